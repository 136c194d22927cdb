// ocispec-peer: the Go side of OCISpec's interop tests and benchmark, using
// the runtime-spec Go types containerd and runc use (Debian's
// golang-github-opencontainers-specs-dev, GOPATH mode).
//
//	ocispec-peer compare A.json B.json   exit 0 when both decode to the same specs.Spec
//	ocispec-peer bench FILE ITERATIONS   decode+encode timings as JSON
//	ocispec-peer containerd-spec OUT     a spec as containerd 1.6 generates it
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"time"

	"github.com/containerd/containerd/containers"
	"github.com/containerd/containerd/contrib/seccomp"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/containerd/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// containerdSpec builds a spec the way containerd does for a container with
// the default seccomp profile, a user namespace, a joined network namespace
// and cgroup limits at their extremes.
func containerdSpec() *oci.Spec {
	ctx := namespaces.WithNamespace(context.Background(), "default")
	var s oci.Spec
	c := &containers.Container{ID: "ctr1"}
	mapping := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	err := oci.ApplyOpts(ctx, nil, c, &s,
		oci.WithDefaultSpec(),
		seccomp.WithDefaultProfile(),
		oci.WithProcessArgs("/bin/sh", "-c", "echo \"hi\""),
		oci.WithEnv([]string{"FOO=bar"}),
		oci.WithTTYSize(80, 24),
		oci.WithHostname("box"),
		oci.WithRootFSPath("rootfs"),
		oci.WithUserNamespace(mapping, mapping),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/var/run/netns/cni-1"}),
		oci.WithMemoryLimit(9223372036854771712),
		oci.WithMemorySwap(-1),
		oci.WithPidsLimit(-1),
		oci.WithCPUShares(1024),
		oci.WithCPUCFS(-1, 100000),
		oci.WithCPUs("0-1"),
		oci.WithAnnotations(map[string]string{"io.kubernetes.cri.container-type": "container"}),
		oci.WithRdt("guaranteed", "L3:0=f", "MB:0=20"),
		oci.WithAmbientCapabilities([]string{"CAP_NET_BIND_SERVICE"}),
		oci.WithNamespacedCgroup(),
		oci.WithApparmorProfile("cri-containerd.apparmor.d"),
	)
	if err != nil {
		fail(err)
	}
	s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_CORE", Hard: ^uint64(0), Soft: ^uint64(0)})
	return &s
}

func load(path string) specs.Spec {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		fail(fmt.Errorf("%s: %w", path, err))
	}
	return spec
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 3 {
		fail(fmt.Errorf("usage: ocispec-peer compare A B | bench FILE N | containerd-spec OUT"))
	}
	switch os.Args[1] {
	case "containerd-spec":
		data, err := json.Marshal(containerdSpec())
		if err != nil {
			fail(err)
		}
		if err := os.WriteFile(os.Args[2], data, 0o644); err != nil {
			fail(err)
		}
	case "compare":
		if len(os.Args) < 4 {
			fail(fmt.Errorf("usage: ocispec-peer compare A B"))
		}
		a, b := load(os.Args[2]), load(os.Args[3])
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			fmt.Fprintf(os.Stderr, "specs differ:\n%s\n%s\n", ja, jb)
			os.Exit(1)
		}
		fmt.Println("equal")
	case "bench":
		if len(os.Args) < 4 {
			fail(fmt.Errorf("usage: ocispec-peer bench FILE N"))
		}
		data, err := os.ReadFile(os.Args[2])
		if err != nil {
			fail(err)
		}
		n, err := strconv.Atoi(os.Args[3])
		if err != nil {
			fail(err)
		}
		start := time.Now()
		for i := 0; i < n; i++ {
			var spec specs.Spec
			if err := json.Unmarshal(data, &spec); err != nil {
				fail(err)
			}
			if _, err := json.Marshal(&spec); err != nil {
				fail(err)
			}
		}
		typed := time.Since(start)
		start = time.Now()
		for i := 0; i < n; i++ {
			dec := json.NewDecoder(bytes.NewReader(data))
			dec.UseNumber()
			var tree interface{}
			if err := dec.Decode(&tree); err != nil {
				fail(err)
			}
			if _, err := json.Marshal(tree); err != nil {
				fail(err)
			}
		}
		untyped := time.Since(start)
		fmt.Printf("{\"typed_us\":%.2f,\"untyped_us\":%.2f}\n",
			float64(typed.Nanoseconds())/float64(n)/1000, float64(untyped.Nanoseconds())/float64(n)/1000)
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}
