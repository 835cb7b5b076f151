/* Benchmark program (scenario 8): what a static program pays for huptime's seccomp filter. Listens
 * on a free loopback port (non-blocking), calls accept4() N times (argv[1], default 100000), the
 * call every new connection makes and which finds no connection here, then getppid() N times, a
 * call that does nothing (what any system call pays for passing a seccomp filter), and prints
 * "US us per accept4" and "US us per getppid" on stderr. Compiled with -static by scripts/bench. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Microseconds since `t0`, per call of `n`. */
static double per_call_us(const struct timespec *t0, int n) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0->tv_sec) * 1e9 + (t1.tv_nsec - t0->tv_nsec);
    return ns / n / 1000.0;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
        perror("accept_round_trip: listen");
        return 1;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) accept4(s, NULL, NULL, SOCK_NONBLOCK);
    fprintf(stderr, "%.3f us per accept4\n", per_call_us(&t0, n));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) syscall(SYS_getppid);
    fprintf(stderr, "%.3f us per getppid\n", per_call_us(&t0, n));
    return 0;
}
