// containerd-client drives a running containerd through its own Go client
// (Debian's github.com/containerd/containerd, GOPATH mode): what `ctr` 1.6 cannot
// do. Each command prints one JSON object on stdout and exits 0, or prints the
// error on stderr and exits 1.
//
//	containerd-client -address SOCK -namespace NS update ID -cpus N -memory-mib M
//	containerd-client -address SOCK -namespace NS stats ID
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/containerd/containerd"
	"github.com/containerd/containerd/namespaces"
	"github.com/containerd/typeurl"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	// Registers the cgroup v2 metrics type with typeurl.
	v2 "github.com/containerd/cgroups/v2/stats"
)

func main() {
	address := flag.String("address", "/run/containerd/containerd.sock", "containerd's socket")
	namespace := flag.String("namespace", "default", "containerd namespace")
	flag.Parse()
	args := flag.Args()
	if len(args) < 2 {
		fail(fmt.Errorf("usage: containerd-client [-address A] [-namespace N] update|stats ID [flags]"))
	}
	client, err := containerd.New(*address, containerd.WithTimeout(10*time.Second))
	must(err)
	defer client.Close()
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), *namespace), 120*time.Second)
	defer cancel()
	container, err := client.LoadContainer(ctx, args[1])
	must(err)
	task, err := container.Task(ctx, nil)
	must(err)
	switch args[0] {
	case "update":
		fs := flag.NewFlagSet("update", flag.ExitOnError)
		cpus := fs.Float64("cpus", 0, "CPU limit in CPUs (quota/period); 0: unchanged")
		memory := fs.Int64("memory-mib", 0, "memory limit in MiB; 0: unchanged")
		must(fs.Parse(args[2:]))
		resources := &specs.LinuxResources{}
		if *cpus > 0 {
			period := uint64(100000)
			quota := int64(*cpus * float64(period))
			resources.CPU = &specs.LinuxCPU{Quota: &quota, Period: &period}
		}
		if *memory > 0 {
			limit := *memory << 20
			resources.Memory = &specs.LinuxMemory{Limit: &limit}
		}
		started := time.Now()
		must(task.Update(ctx, containerd.WithResources(resources)))
		emit(map[string]interface{}{"updated": args[1], "seconds": time.Since(started).Seconds()})
	case "stats":
		metric, err := task.Metrics(ctx)
		must(err)
		out := map[string]interface{}{"type_url": metric.Data.TypeUrl, "raw": base64.StdEncoding.EncodeToString(metric.Data.Value)}
		decoded, err := typeurl.UnmarshalAny(metric.Data)
		must(err)
		if m, ok := decoded.(*v2.Metrics); ok {
			if m.CPU != nil {
				out["cpu_usage_usec"] = m.CPU.UsageUsec
			}
			if m.Memory != nil {
				out["memory_usage"] = m.Memory.Usage
				out["memory_limit"] = m.Memory.UsageLimit
			}
			if m.Pids != nil {
				out["pids"] = m.Pids.Current
			}
		} else {
			out["decoded_as"] = fmt.Sprintf("%T", decoded)
		}
		emit(out)
	default:
		fail(fmt.Errorf("unknown command %q", args[0]))
	}
}

func emit(v interface{}) {
	data, err := json.Marshal(v)
	must(err)
	fmt.Println(string(data))
}

func must(err error) {
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "containerd-client:", err)
	os.Exit(1)
}
