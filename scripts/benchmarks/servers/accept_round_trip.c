/* Benchmark program (scenario 8): the cost of one accept() that finds no connection, the call
 * every new connection of a static program under huptime's seccomp filter makes. Listens on a free loopback
 * port (non-blocking), calls accept4() N times (argv[1], default 100000) and prints
 * "US us per accept4" on stderr. Compiled with -static by scripts/bench. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
        perror("accept_round_trip: listen");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++) accept4(s, NULL, NULL, SOCK_NONBLOCK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "%.2f us per accept4\n", ns / n / 1000.0);
    return 0;
}
