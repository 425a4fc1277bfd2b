/*
 * AddressSanitizer fiber annotations.
 *
 * ASan tracks the bounds of "the" stack of each thread; when a coroutine
 * switch moves sp to a different stack without telling it, ASan reports
 * false stack-buffer-overflows and cannot unpoison stacks correctly on
 * noreturn calls.  The core wraps every corio__ctx_switch in these two
 * calls (protocol in arch.h).  Without ASan they are empty inline
 * functions in arch.h, so a switch does not even compute their arguments.
 */
#include "arch.h"

#ifdef CORIO__ASAN_ON
#include <sanitizer/common_interface_defs.h>

void corio__asan_start_switch(void **fake_stack_save, const void *bottom, size_t size)
{
    __sanitizer_start_switch_fiber(fake_stack_save, bottom, size);
}

void corio__asan_finish_switch(void *fake_stack_save, const void **bottom_old, size_t *size_old)
{
    __sanitizer_finish_switch_fiber(fake_stack_save, bottom_old, size_old);
}

#else

/* Nothing: arch.h has the no-ops inline. */
typedef int corio__asan_off;

#endif
