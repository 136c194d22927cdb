extension QEMUJail {
    /// The system calls a jailed QEMU may make; any other kills it (`SIGSYS`, reported
    /// as the VM's exit reason). Measured with `strace -f` over the test suite's machines
    /// (microvm and q35 under TCG: boot, virtio-blk/net/serial/rng, hotplug, save and
    /// restore, shutdown), grouped by what needs them. The filter is loaded before
    /// `execve`, so it also covers the dynamic loader; QEMU's own `-sandbox` then denies
    /// `execve`, `fork`, privilege and scheduler changes on top.
    static let allowedSystemCalls: [String] = memory + files + descriptors + events + threads
        + signals + time + process + network

    /// The address space: guest RAM, TCG's code buffer, the loader, glib's allocator.
    static let memory = ["brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mlock", "munlock",
                         "membarrier", "mbind", "get_mempolicy", "set_mempolicy"]
    /// Files and descriptors QEMU was given, the firmware and libraries under `/usr`,
    /// the kernel and initrd, disk images through fdsets (`dup`, `fcntl`), block I/O.
    static let files = ["read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
                        "preadv2", "pwritev2", "lseek", "openat", "open", "close", "close_range", "newfstatat",
                        "fstat", "stat", "lstat", "statx", "statfs", "fstatfs", "access", "faccessat",
                        "faccessat2", "readlink", "readlinkat", "getdents64", "fsync", "fdatasync",
                        "fallocate", "fadvise64", "ftruncate", "flock", "fcntl", "ioctl", "getcwd", "io_uring_setup",
                        "io_uring_enter", "io_uring_register", "io_setup", "io_submit", "io_getevents",
                        "io_destroy", "memfd_create", "copy_file_range",
                        // A socket chardev closing unlinks its path (none inside the read-only root).
                        "unlink"]
    /// Descriptors QEMU makes for itself: pipes, eventfds, sockets it was passed.
    static let descriptors = ["dup", "dup2", "dup3", "pipe", "pipe2", "eventfd2", "signalfd4", "timerfd_create",
                              "timerfd_settime"]
    /// The main loop.
    static let events = ["poll", "ppoll", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "select",
                         "pselect6"]
    /// vCPU, I/O and RCU threads.
    static let threads = ["clone", "clone3", "futex", "set_robust_list", "get_robust_list", "set_tid_address",
                          "rseq", "sched_yield", "sched_getaffinity", "gettid", "getcpu"]
    /// Signal handling (SIGBUS for RAM, SIGUSR1 to kick vCPUs, SIGTERM/SIGINT to quit).
    static let signals = ["rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack",
                          "tgkill", "kill", "tkill"]
    /// Clocks and timers.
    static let time = ["clock_gettime", "clock_getres", "clock_nanosleep", "gettimeofday", "nanosleep",
                       "getitimer", "setitimer", "timer_create", "timer_settime", "timer_delete", "times"]
    /// Process bookkeeping: the loader, QEMU's own `-sandbox` filter, exit.
    static let process = ["execve", "exit", "exit_group", "arch_prctl", "prctl", "seccomp", "prlimit64",
                          "getrlimit", "getrandom", "getpid", "getppid", "getuid", "geteuid", "getgid", "getegid",
                          "getresuid", "getresgid", "getgroups", "uname", "sysinfo", "getrusage", "umask",
                          "wait4"]
    /// The sockets QEMU was passed: accept on its listeners, messages with descriptors;
    /// `socketpair` for a vhost-user backend's reply channel (virtio-fs, sent to virtiofsd).
    static let network = ["listen", "accept", "accept4", "recvfrom", "recvmsg", "sendto", "sendmsg", "shutdown",
                          "getsockopt", "setsockopt", "getsockname", "getpeername", "socketpair"]
}
