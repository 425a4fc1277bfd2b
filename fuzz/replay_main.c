/*
 * A standalone driver for libFuzzer entry points, so that the corpus in
 * fuzz/corpus/ is replayed by ctest with any compiler (no -fsanitize=fuzzer
 * needed).  Arguments are files or directories (one level deep).  Each input
 * is run as stored and then with its first byte (the split selector of the
 * targets here) set to every value, so that each seed is checked at every
 * split point (with FUZZ_REPLAY_AS_STORED set in the environment, only as
 * stored: valgrind runs a TLS handshake too slowly for 257 of each).
 * Exits non-zero on the first unreadable file; a failing input aborts
 * inside the target.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, n);
    if (n > 0 && !getenv("FUZZ_REPLAY_AS_STORED")) {
        unsigned char keep = buf[0];
        for (int b = 0; b < 256; b++) {
            buf[0] = (unsigned char)b;
            LLVMFuzzerTestOneInput(buf, n);
        }
        buf[0] = keep;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) < 0)
                return 1;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            perror(argv[i]);
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (run_file(path) < 0) {
                closedir(d);
                return 1;
            }
            files++;
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", files);
    return files > 0 ? 0 : 1;
}
