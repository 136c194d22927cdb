import Foundation

/// Hand-written fixtures. Every member whose name starts with `x` is one the
/// library does not model (vendor or future extensions); everything else is
/// modelled and must not land in any `extensions` store.
enum Fixtures {
    /// A runtime spec exercising every modelled field, extreme integers and
    /// unknown members at every object level.
    static let fullRuntimeSpec = #"""
    {
      "ociVersion": "1.1.0",
      "xTopLevelFuture": {"nested": [1, 2.5, -3, null, true, "s"], "empty": {}},
      "xHuge": 18446744073709551615,
      "xMostNegative": -9223372036854775808,
      "xFloat": 1.5e-7,
      "xNullValue": null,
      "hostname": "box",
      "domainname": "example.org",
      "root": {"path": "rootfs", "readonly": true, "xRoot": 1},
      "annotations": {"io.kubernetes.cri.container-type": "container", "unicode": "h\u00e9llo \ud83d\ude00 \"quoted\" \\ back"},
      "process": {
        "terminal": false,
        "consoleSize": {"height": 24, "width": 80, "xBox": "b"},
        "user": {"uid": 4294967295, "gid": 0, "umask": 18, "additionalGids": [1, 2, 4294967294], "username": "root", "xUser": [1]},
        "args": ["/bin/sh", "-c", "echo \"hi\"\n"],
        "commandLine": "sh -c 'echo hi'",
        "env": ["PATH=/usr/bin:/bin", "EMPTY="],
        "cwd": "/work",
        "capabilities": {
          "bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
          "effective": ["CAP_CHOWN"],
          "inheritable": [],
          "permitted": ["CAP_CHOWN", "CAP_SYS_ADMIN"],
          "ambient": ["CAP_CHOWN"],
          "xCaps": "c"
        },
        "rlimits": [
          {"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1024},
          {"type": "RLIMIT_CORE", "hard": 18446744073709551615, "soft": 18446744073709551615, "xRlimit": false}
        ],
        "noNewPrivileges": true,
        "apparmorProfile": "cri-containerd.apparmor.d",
        "oomScoreAdj": -999,
        "selinuxLabel": "system_u:system_r:container_t:s0:c1,c2",
        "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4, "xIO": 0},
        "scheduler": {"policy": "SCHED_DEADLINE", "nice": -5, "priority": 0, "flags": ["SCHED_FLAG_RESET_ON_FORK"],
                      "runtime": 10000000, "deadline": 20000000, "period": 18446744073709551615, "xSched": {}},
        "execCPUAffinity": {"initial": "0-1", "final": "1", "xAffinity": 2},
        "xProcess": {"deep": {"deeper": [[], [{}]]}}
      },
      "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec"], "xMount": 7},
        {"destination": "/data", "type": "bind", "source": "/host/data", "options": ["rbind", "ro", "idmap"],
         "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536, "xMap": 1}],
         "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}
      ],
      "hooks": {
        "prestart": [{"path": "/usr/bin/prestart", "args": ["prestart", "a"], "env": ["A=1"], "timeout": 5, "xHook": 3}],
        "createRuntime": [{"path": "/usr/bin/cr"}],
        "createContainer": [{"path": "/usr/bin/cc"}],
        "startContainer": [{"path": "/usr/bin/sc"}],
        "poststart": [{"path": "/usr/bin/ps"}],
        "poststop": [{"path": "/usr/bin/pst", "timeout": 2147483647}],
        "xHooks": []
      },
      "linux": {
        "namespaces": [
          {"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-1234", "xNs": "n"},
          {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}, {"type": "cgroup"}, {"type": "time"}
        ],
        "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 4294967295}],
        "timeOffsets": {"boottime": {"secs": -9223372036854775808, "nanosecs": 999999999, "xOff": 1}, "monotonic": {"secs": 9223372036854775807}},
        "devices": [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0, "xDev": 1},
                    {"type": "p", "path": "/dev/fifo"}],
        "netDevices": {"eth1": {"name": "net1", "xNet": 1}},
        "cgroupsPath": "/kubepods/besteffort/pod1234/abcdef",
        "rootfsPropagation": "rslave",
        "resources": {
          "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw", "xRule": 1}],
          "memory": {"limit": 9223372036854775807, "reservation": 0, "swap": -1, "kernel": -1, "kernelTCP": 9223372036854771712,
                     "swappiness": 60, "disableOOMKiller": false, "useHierarchy": true, "checkBeforeUpdate": true, "xMem": 1},
          "cpu": {"shares": 18446744073709551615, "quota": -1, "burst": 0, "period": 100000, "realtimeRuntime": -9223372036854775808,
                  "realtimePeriod": 1000000, "cpus": "0-3", "mems": "0", "idle": 1, "xCpu": 1},
          "pids": {"limit": -1, "xPids": 1},
          "blockIO": {"weight": 500, "leafWeight": 300,
                      "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 300, "xW": 1}],
                      "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 18446744073709551615, "xT": 1}],
                      "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 1}],
                      "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 2}],
                      "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 3}], "xBlk": 1},
          "hugepageLimits": [{"pageSize": "2MB", "limit": 18446744073709551615, "xHuge": 1}],
          "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 500, "xPrio": 1}], "xNetRes": 1},
          "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000, "xRdma": 1}},
          "unified": {"memory.high": "1073741824", "io.weight": "default 100"},
          "xResources": {"future": true}
        },
        "seccomp": {
          "defaultAction": "SCMP_ACT_ERRNO",
          "defaultErrnoRet": 38,
          "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
          "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
          "listenerPath": "/run/seccomp-agent.sock",
          "listenerMetadata": "meta",
          "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 18446744073709551615, "valueTwo": 0, "op": "SCMP_CMP_EQ", "xArg": 1},
                      {"index": 5, "value": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "xSys": 1}
          ],
          "xSeccomp": 1
        },
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "maskedPaths": ["/proc/kcore"],
        "readonlyPaths": ["/proc/sys"],
        "mountLabel": "system_u:object_r:container_file_t:s0",
        "intelRdt": {"closID": "guaranteed", "l3CacheSchema": "L3:0=7f0", "memBwSchema": "MB:0=20", "schemata": ["L2:0=ff"],
                     "enableCMT": true, "enableMBM": true, "enableMonitoring": false, "xRdt": 1},
        "personality": {"domain": "LINUX32", "flags": [], "xPers": 1},
        "xLinux": {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0-1"}}
      },
      "solaris": {"milestone": "svc:/milestone/container:default"},
      "vm": {"kernel": {"path": "/boot/vmlinuz"}}
    }
    """#

    /// An image index with platforms, extensions and a Docker-style member.
    static let index = #"""
    {
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "artifactType": "application/vnd.example.signature.v1",
      "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:e692418e4cbaf90ca69d05a66403747baa33ee08806650b51fab815ad7fc331f", "size": 7143,
         "platform": {"architecture": "ppc64le", "os": "linux", "xPlat": 1}},
        {"mediaType": "application/vnd.oci.empty.v1+json",
         "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2, "data": "e30="},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270", "size": 7682,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8", "os.version": "6.1", "os.features": ["f"], "features": ["g"]},
         "urls": ["https://example.com/blob"], "annotations": {"a": "b"}, "artifactType": "application/vnd.example+type",
         "xDesc": 1}
      ],
      "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270", "size": 7682},
      "annotations": {"com.example.key1": "value1"},
      "xIndex": {"future": [1]}
    }
    """#

    /// An image manifest with inline data and a large layer.
    static let manifest = #"""
    {
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "artifactType": "application/vnd.example.sbom.v1",
      "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                 "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2, "data": "e30="},
      "layers": [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
         "digest": "sha256:9834876dcfb05cb167a5c24953eba58c4ac89b1adf57f28f2f9d09af107ee8f0", "size": 9223372036854775807, "xLayer": 1},
        {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
         "digest": "sha512:8d73bb5a5dca67c0a7aa5bb6b88ae7e36a4b12cd0d1e7f06b0b1e3e9ee8af3a9c5a11e0f8b2cfa6e0b7aef6fb6a4cb4f3fdd7ea2bd77b8e7c5e8ae6fc3bc1eaa", "size": 0,
         "urls": ["https://mirror.example.com/layer"], "annotations": {"org.opencontainers.image.title": "layer.tar.zst"},
         "platform": {"architecture": "amd64", "os": "linux"}, "artifactType": "application/vnd.example.layer"}
      ],
      "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "digest": "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270", "size": 7682},
      "annotations": {"org.opencontainers.image.created": "2015-02-01T00:00:00Z"},
      "xManifest": true
    }
    """#

    /// An image configuration as Docker/BuildKit writes it (with Docker-only members).
    static let imageConfig = #"""
    {
      "created": "2015-10-31T22:22:56.015925234Z",
      "author": "Alyssa P. Hacker <alyspdev@example.com>",
      "architecture": "amd64",
      "os": "linux",
      "os.version": "10.0",
      "os.features": ["win32k"],
      "variant": "v3",
      "config": {
        "User": "alice", "ExposedPorts": {"8080/tcp": {}}, "Env": ["PATH=/usr/bin", "FOO=bar"],
        "Entrypoint": ["/bin/my-app-binary"], "Cmd": ["--foreground"], "Volumes": {"/var/job-result-data": {}},
        "WorkingDir": "/home/alice", "Labels": {"com.example.project": "x"}, "StopSignal": "SIGTERM", "ArgsEscaped": true,
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000}, "OnBuild": null, "Shell": ["/bin/sh", "-c"]
      },
      "rootfs": {"type": "layers", "diff_ids": [
        "sha256:c6f988f4874bb0add23a778f753c65efe992244e148a1d2ec2a8b664fb66bbd1",
        "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"], "xRootfs": 1},
      "history": [
        {"created": "2015-10-31T22:22:54.690851953Z", "created_by": "/bin/sh -c #(nop) ADD file:a3bc1e842b69636f9df5256c49c5374fb4eef1e281fe3f282c65fb853ee171c5 in /", "xHist": 1},
        {"created": "2015-10-31T22:22:55.613815829Z", "created_by": "/bin/sh -c #(nop) CMD [\"sh\"]", "author": "a", "comment": "c", "empty_layer": true},
        {"created": "2015-10-31T22:22:56.015925234Z", "created_by": "/bin/sh -c apk add curl"}
      ],
      "xConfig": 1
    }
    """#
}
