/*
 * AddressSanitizer fiber annotations.
 *
 * ASan tracks the bounds of "the" stack of each thread; when a coroutine
 * switch moves sp to a different stack without telling it, ASan reports
 * false stack-buffer-overflows and cannot unpoison stacks correctly on
 * noreturn calls.  The core wraps every corio__ctx_switch in these two
 * calls (protocol in arch.h).  Without ASan they are empty functions; the
 * cost of the call is immaterial next to the switch.
 */
#include "arch.h"

#if defined(__SANITIZE_ADDRESS__)
#define CORIO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_ASAN 1
#endif
#endif

#ifdef CORIO_ASAN
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

void corio__asan_start_switch(void **fake_stack_save, const void *bottom, size_t size)
{
    (void)fake_stack_save;
    (void)bottom;
    (void)size;
}

void corio__asan_finish_switch(void *fake_stack_save, const void **bottom_old, size_t *size_old)
{
    (void)fake_stack_save;
    (void)bottom_old;
    (void)size_old;
}

#endif
