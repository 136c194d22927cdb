/* pause: the process of a pod's sandbox ("pause") container in qemubox's CRI tests.
 * It holds the pod's namespaces: sleeps until SIGTERM or SIGINT, then exits 0, and
 * reaps every child it inherits meanwhile (it is PID 1 of the pod's PID namespace).
 * Built static by scripts/make-pause-image.py: gcc -static -O2 -o pause pause.c */
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>

static volatile sig_atomic_t stopping;

static void on_stop(int signo) { (void)signo; stopping = 1; }
static void on_child(int signo) { (void)signo; }

int main(void) {
    sigset_t blocked, waiting;
    sigemptyset(&blocked);
    sigaddset(&blocked, SIGTERM);
    sigaddset(&blocked, SIGINT);
    sigaddset(&blocked, SIGCHLD);
    /* Blocked outside sigsuspend: a signal between the check and the wait is not lost. */
    if (sigprocmask(SIG_BLOCK, &blocked, &waiting) != 0) return 1;
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);
    sigdelset(&waiting, SIGCHLD);

    struct sigaction action = {0};
    action.sa_handler = on_stop;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGTERM, &action, NULL) != 0 || sigaction(SIGINT, &action, NULL) != 0) return 1;
    action.sa_handler = on_child;
    action.sa_flags = SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &action, NULL) != 0) return 1;

    while (!stopping) {
        sigsuspend(&waiting);
        while (waitpid(-1, NULL, WNOHANG) > 0) {
        }
    }
    return 0;
}
