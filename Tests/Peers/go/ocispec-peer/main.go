// ocispec-peer: the Go side of OCISpec's interop tests and benchmark, using
// the runtime-spec Go types containerd and runc use (Debian's
// golang-github-opencontainers-specs-dev, GOPATH mode).
//
//	ocispec-peer compare A.json B.json   exit 0 when both decode to the same specs.Spec
//	ocispec-peer bench FILE ITERATIONS   decode+encode timings as JSON
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

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
	if len(os.Args) < 4 {
		fail(fmt.Errorf("usage: ocispec-peer compare A B | bench FILE N"))
	}
	switch os.Args[1] {
	case "compare":
		a, b := load(os.Args[2]), load(os.Args[3])
		if !reflect.DeepEqual(a, b) {
			ja, _ := json.Marshal(a)
			jb, _ := json.Marshal(b)
			fmt.Fprintf(os.Stderr, "specs differ:\n%s\n%s\n", ja, jb)
			os.Exit(1)
		}
		fmt.Println("equal")
	case "bench":
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
