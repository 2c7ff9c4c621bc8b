/* files: the file system calls a program makes, one line per check ending
 * in "ok" or "FAIL ...", then "files: N ok, M failed"; exits with M.
 *
 * Expects the rootfs of the boot tests: /data/hello.txt ("from the
 * rootfs\n") and the folder /data/sub. FILES_ROOT (default: none) prefixes
 * "/" and /data, so that the program can be checked on the host too. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int ok_count, fail_count;

static void check(int ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        printf("%s ok\n", name);
        ok_count++;
        return;
    }
    int e = errno;
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    printf("%s FAIL %s (errno %d: %s)\n", name, why, e, strerror(e));
    fail_count++;
}

/* Create, write, read back, seek, pread, fstat and stat one file. */
static void file_checks(const char *where, const char *path)
{
    char name[64];
    const char text[] = "hello world\n";
    char buf[64] = {0};
    struct stat st;

    errno = 0;
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    snprintf(name, sizeof name, "%s: open O_CREAT", where);
    check(fd >= 0, name, "open %s", path);
    if (fd < 0)
        return;
    snprintf(name, sizeof name, "%s: write", where);
    ssize_t n = write(fd, text, 12);
    check(n == 12, name, "wrote %zd of 12", n);
    snprintf(name, sizeof name, "%s: lseek SEEK_SET", where);
    off_t o = lseek(fd, 0, SEEK_SET);
    check(o == 0, name, "got %lld", (long long)o);
    snprintf(name, sizeof name, "%s: read", where);
    n = read(fd, buf, sizeof buf);
    check(n == 12 && memcmp(buf, text, 12) == 0, name, "read %zd bytes", n);
    snprintf(name, sizeof name, "%s: lseek SEEK_END", where);
    o = lseek(fd, 0, SEEK_END);
    check(o == 12, name, "got %lld", (long long)o);
    snprintf(name, sizeof name, "%s: pread", where);
    memset(buf, 0, sizeof buf);
    n = pread(fd, buf, 5, 6);
    check(n == 5 && memcmp(buf, "world", 5) == 0, name, "read %zd bytes: %.5s", n, buf);
    snprintf(name, sizeof name, "%s: fstat", where);
    int r = fstat(fd, &st);
    check(r == 0 && S_ISREG(st.st_mode) && st.st_size == 12, name, "r %d size %lld", r, (long long)st.st_size);
    close(fd);
    snprintf(name, sizeof name, "%s: stat", where);
    r = stat(path, &st);
    check(r == 0 && S_ISREG(st.st_mode) && st.st_size == 12, name, "r %d size %lld", r, (long long)st.st_size);
}

int main(int argc, char **argv)
{
    const char *root = getenv("FILES_ROOT");
    if (!root)
        root = "";
    char tmp[64], top[PATH_MAX], data[PATH_MAX], a[PATH_MAX], b[PATH_MAX], d[80];
    struct stat st;
    int r;
    snprintf(tmp, sizeof tmp, "/tmp/files-%d", (int)getpid());
    snprintf(top, sizeof top, "%s/files-%d.txt", root, (int)getpid());
    snprintf(data, sizeof data, "%s/data", root);

    /* /tmp: there, or made. */
    errno = 0;
    r = mkdir("/tmp", 01777);
    check(r == 0 || errno == EEXIST, "mkdir /tmp", "mkdir");
    file_checks("/tmp", tmp);
    file_checks("/", top);

    /* A folder of the rootfs. */
    errno = 0;
    DIR *dir = opendir(data);
    check(dir != NULL, "opendir /data", "opendir %s", data);
    if (dir) {
        int seen_file = 0, seen_sub = 0, entries = 0;
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            entries++;
            seen_file |= strcmp(e->d_name, "hello.txt") == 0;
            seen_sub |= strcmp(e->d_name, "sub") == 0;
        }
        closedir(dir);
        check(seen_file && seen_sub, "readdir /data", "%d entries, hello.txt %d, sub %d", entries, seen_file,
              seen_sub);
    }

    /* A file that came from the rootfs. */
    errno = 0;
    char buf[64] = {0};
    int fd = open(strcat(strcpy(a, data), "/hello.txt"), O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    check(n == 16 && strcmp(buf, "from the rootfs\n") == 0, "read /data/hello.txt", "read %zd: %s", n, buf);

    /* rename, unlink */
    snprintf(a, sizeof a, "%s.renamed", tmp);
    errno = 0;
    r = rename(tmp, a);
    check(r == 0 && stat(tmp, &st) != 0 && errno == ENOENT && stat(a, &st) == 0, "rename", "r %d", r);
    errno = 0;
    r = unlink(a);
    check(r == 0 && stat(a, &st) != 0 && errno == ENOENT, "unlink", "r %d", r);
    r = unlink(top);
    check(r == 0, "unlink /", "r %d", r);

    /* mkdir, getcwd, chdir, a relative path */
    snprintf(d, sizeof d, "%s.d", tmp);
    errno = 0;
    r = mkdir(d, 0755);
    check(r == 0 && stat(d, &st) == 0 && S_ISDIR(st.st_mode), "mkdir", "r %d", r);
    char cwd[PATH_MAX] = {0}, before[PATH_MAX] = {0};
    errno = 0;
    check(getcwd(before, sizeof before) != NULL, "getcwd", "getcwd");
    r = chdir(d);
    check(r == 0 && getcwd(cwd, sizeof cwd) && strcmp(cwd, d) == 0, "chdir", "r %d cwd %s", r, cwd);
    fd = open("rel", O_CREAT | O_WRONLY, 0644);
    if (fd >= 0)
        close(fd);
    snprintf(b, sizeof b, "%s/rel", d);
    check(fd >= 0 && stat(b, &st) == 0, "relative open", "fd %d", fd);
    unlink(b);
    chdir(before[0] ? before : "/");
    rmdir(d);

    /* /proc/self/exe is the program. */
    char exe[PATH_MAX] = {0};
    errno = 0;
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    check(n > 0 && strcmp(exe, argv[0]) == 0, "readlink /proc/self/exe", "got %s, argv[0] %s", exe,
          argc > 0 ? argv[0] : "");

    /* /dev/zero, /dev/null, /dev/urandom */
    unsigned char z[64];
    memset(z, 0xa5, sizeof z);
    errno = 0;
    fd = open("/dev/zero", O_RDONLY);
    n = fd >= 0 ? read(fd, z, sizeof z) : -1;
    int zeros = 1;
    for (size_t i = 0; i < sizeof z; i++)
        zeros &= z[i] == 0;
    if (fd >= 0)
        close(fd);
    check(n == 64 && zeros, "read /dev/zero", "read %zd", n);
    errno = 0;
    fd = open("/dev/null", O_RDWR);
    n = fd >= 0 ? write(fd, "0123456789", 10) : -1;
    ssize_t m = fd >= 0 ? read(fd, z, sizeof z) : -1;
    if (fd >= 0)
        close(fd);
    check(n == 10 && m == 0, "write /dev/null", "wrote %zd, read %zd", n, m);
    unsigned char rnd[16] = {0};
    errno = 0;
    fd = open("/dev/urandom", O_RDONLY);
    n = fd >= 0 ? read(fd, rnd, sizeof rnd) : -1;
    int nonzero = 0;
    for (size_t i = 0; i < sizeof rnd; i++)
        nonzero |= rnd[i] != 0;
    if (fd >= 0)
        close(fd);
    check(n == 16 && nonzero, "read /dev/urandom", "read %zd", n);

    printf("files: %d ok, %d failed\n", ok_count, fail_count);
    return fail_count;
}
