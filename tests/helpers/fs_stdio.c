/* fs_stdio.c — stdio on a regular file, the way compilers and text tools use
 * it: many small buffered writes (fputs, fputc, putc, fprintf, fwrite) and
 * reads (getc, fgetc, fgets, getline, fread), a few seeks, and a line-buffered
 * stream whose every line reaches the kernel. Usage: fs_stdio DIR LINES.
 * Prints "stdio LINES BYTES" and exits 0 when the data read back is right. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what)
{
    perror(what);
    exit(1);
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    char path[4096], lpath[4096];
    snprintf(path, sizeof path, "%s/stdio.txt", argv[1]);
    snprintf(lpath, sizeof lpath, "%s/lined.txt", argv[1]);
    long lines = atol(argv[2]);

    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("fopen w");
    for (long i = 0; i < lines; i++) {
        switch (i % 4) {
        case 0: fputs("line ", f); fprintf(f, "%ld\n", i); break;
        case 1: fputc('l', f); putc('i', f); fputs("ne ", f); fprintf(f, "%ld\n", i); break;
        case 2: fwrite("line ", 1, 5, f); fprintf(f, "%ld\n", i); break;
        default: fprintf(f, "line %ld\n", i); break;
        }
    }
    if (fclose(f) != 0)
        die("fclose w");

    f = fopen(path, "r");
    if (f == NULL)
        die("fopen r");
    char buf[256], *line = NULL;
    size_t cap = 0;
    long bytes = 0;
    for (long i = 0; i < lines; i++) {
        char want[64];
        snprintf(want, sizeof want, "line %ld\n", i);
        switch (i % 4) {
        case 0:
            if (fgets(buf, sizeof buf, f) == NULL || strcmp(buf, want) != 0)
                die("fgets");
            break;
        case 1:
            if (getline(&line, &cap, f) < 0 || strcmp(line, want) != 0)
                die("getline");
            strcpy(buf, line);
            break;
        case 2:
            if (fread(buf, 1, strlen(want), f) != strlen(want) || memcmp(buf, want, strlen(want)) != 0)
                die("fread");
            buf[strlen(want)] = '\0';
            break;
        default: {
            size_t n = 0;
            int c;
            while ((c = (n % 2) ? getc(f) : fgetc(f)) != EOF && n < sizeof buf - 1) {
                buf[n++] = (char) c;
                if (c == '\n')
                    break;
            }
            buf[n] = '\0';
            if (strcmp(buf, want) != 0)
                die("getc");
        }
        }
        bytes += (long) strlen(buf);
        if (i % 1000 == 999 && fseek(f, 0, SEEK_CUR) != 0)
            die("fseek");
    }
    free(line);
    fclose(f);

    /* Line buffered: each line is one write. */
    f = fopen(lpath, "w");
    if (f == NULL || setvbuf(f, NULL, _IOLBF, 4096) != 0)
        die("line buffered");
    for (long i = 0; i < lines / 100; i++)
        fprintf(f, "%ld\n", i);
    fclose(f);
    printf("stdio %ld %ld\n", lines, bytes);
    return 0;
}
