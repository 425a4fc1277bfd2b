/*
 * What the io layer's files offer the layers above beyond corio.h
 * (src/io/file.c): a positioned read for a caller that reads one open file
 * piece after piece (the HTTP server's HTTPS file bodies) and can carry
 * what the first piece taught about the file to the next ones.
 */
#ifndef CORIO_IO_FILE_H
#define CORIO_IO_FILE_H

#include <stdint.h>
#include <sys/types.h>

/* What corio__file_pread_seq knows about an fd: start with
 * CORIO__FILE_UNKNOWN. */
enum { CORIO__FILE_UNKNOWN, CORIO__FILE_ANY, CORIO__FILE_MEMORY };

/* Read up to n bytes at off, as corio_file_pread (same results, errors and
 * suspension), for a caller that reads the same open file again and again.
 * *how carries what the first call learnt about fd to the next (start at
 * CORIO__FILE_UNKNOWN; the caller keeps fd open, and pointing to the same
 * file, for as long as it passes the same *how).  A regular file on tmpfs
 * or ramfs (CORIO__FILE_MEMORY) is then read with one pread(2) on the loop
 * thread on both backends: such a file never waits for a device and takes
 * no RWF_NOWAIT, so neither epoll's non-blocking attempt and its fstat nor
 * io_uring's hop to a kernel worker buys anything per piece.  Suspends
 * only where corio_file_pread would. */
ssize_t corio__file_pread_seq(int fd, void *buf, size_t n, int64_t off, int *how);

#endif
