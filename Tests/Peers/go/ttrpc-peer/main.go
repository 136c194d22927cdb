// ttrpc-peer is the Go side of qemubox's ttrpc interop tests and benchmarks,
// built against Debian's github.com/containerd/ttrpc (GOPATH mode).
//
//	ttrpc-peer server -socket PATH          serve qemubox.test.v1.Echo until stdin closes
//	ttrpc-peer client -socket PATH -scenario NAME [-n N]   run a scenario, print JSON
//	ttrpc-peer bench  -socket PATH -duration D -size N -concurrency C
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

const serviceName = "qemubox.test.v1.Echo"

// Messages mirror Tests/Peers/proto/echo.proto field by field.

type Pair struct {
	Key   string `protobuf:"bytes,1,opt,name=key,proto3"`
	Value string `protobuf:"bytes,2,opt,name=value,proto3"`
}

func (m *Pair) Reset()         { *m = Pair{} }
func (m *Pair) String() string { return fmt.Sprintf("%+v", *m) }
func (*Pair) ProtoMessage()    {}

type EchoRequest struct {
	Payload      []byte `protobuf:"bytes,1,opt,name=payload,proto3"`
	FailCode     int32  `protobuf:"varint,2,opt,name=fail_code,proto3"`
	FailMessage  string `protobuf:"bytes,3,opt,name=fail_message,proto3"`
	SleepMs      int64  `protobuf:"varint,4,opt,name=sleep_ms,proto3"`
	ResponseSize int64  `protobuf:"varint,5,opt,name=response_size,proto3"`
}

func (m *EchoRequest) Reset()         { *m = EchoRequest{} }
func (m *EchoRequest) String() string { return fmt.Sprintf("%+v", *m) }
func (*EchoRequest) ProtoMessage()    {}

type EchoResponse struct {
	Payload     []byte  `protobuf:"bytes,1,opt,name=payload,proto3"`
	Metadata    []*Pair `protobuf:"bytes,2,rep,name=metadata,proto3"`
	TimeoutNano int64   `protobuf:"varint,3,opt,name=timeout_nano,proto3"`
}

func (m *EchoResponse) Reset()         { *m = EchoResponse{} }
func (m *EchoResponse) String() string { return fmt.Sprintf("%+v", *m) }
func (*EchoResponse) ProtoMessage()    {}

func echo(ctx context.Context, unmarshal func(interface{}) error) (interface{}, error) {
	var req EchoRequest
	if err := unmarshal(&req); err != nil {
		return nil, err
	}
	resp := &EchoResponse{Payload: req.Payload}
	if dl, ok := ctx.Deadline(); ok {
		resp.TimeoutNano = time.Until(dl).Nanoseconds()
	}
	if md, ok := ttrpc.GetMetadata(ctx); ok {
		for k, vs := range md {
			for _, v := range vs {
				resp.Metadata = append(resp.Metadata, &Pair{Key: k, Value: v})
			}
		}
		sort.SliceStable(resp.Metadata, func(i, j int) bool {
			a, b := resp.Metadata[i], resp.Metadata[j]
			if a.Key != b.Key {
				return a.Key < b.Key
			}
			return a.Value < b.Value
		})
	}
	if req.SleepMs > 0 {
		select {
		case <-time.After(time.Duration(req.SleepMs) * time.Millisecond):
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	if req.FailCode != 0 {
		return nil, status.Error(codes.Code(req.FailCode), req.FailMessage)
	}
	if req.ResponseSize > 0 {
		p := make([]byte, req.ResponseSize)
		for i := range p {
			p[i] = byte(i)
		}
		resp.Payload = p
	}
	return resp, nil
}

func serve(path string) {
	s, err := ttrpc.NewServer()
	must(err)
	s.Register(serviceName, map[string]ttrpc.Method{"Echo": echo})
	os.Remove(path)
	l, err := net.Listen("unix", path)
	must(err)
	go func() {
		// Exit when the test that started us closes stdin (or dies).
		io.Copy(io.Discard, os.Stdin)
		s.Close()
		os.Remove(path)
		os.Exit(0)
	}()
	fmt.Println("ready")
	if err := s.Serve(context.Background(), l); err != nil && err != ttrpc.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "serve:", err)
	}
}

type result struct {
	Code        int32    `json:"code"`
	Message     string   `json:"message"`
	Payload     string   `json:"payload,omitempty"`
	PayloadLen  int      `json:"payload_len"`
	Metadata    []string `json:"metadata,omitempty"`
	TimeoutNano int64    `json:"timeout_nano"`
	ElapsedMs   int64    `json:"elapsed_ms"`
}

func call(c *ttrpc.Client, ctx context.Context, service, method string, req *EchoRequest) result {
	var resp EchoResponse
	start := time.Now()
	err := c.Call(ctx, service, method, req, &resp)
	r := result{ElapsedMs: time.Since(start).Milliseconds()}
	if err != nil {
		st, _ := status.FromError(err)
		r.Code, r.Message = int32(st.Code()), st.Message()
		return r
	}
	r.Payload, r.PayloadLen, r.TimeoutNano = string(resp.Payload), len(resp.Payload), resp.TimeoutNano
	for _, p := range resp.Metadata {
		r.Metadata = append(r.Metadata, p.Key+"="+p.Value)
	}
	return r
}

func client(path, scenario string, n int) {
	conn, err := net.Dial("unix", path)
	must(err)
	c := ttrpc.NewClient(conn)
	defer c.Close()
	bg := context.Background()
	out := map[string]interface{}{}
	switch scenario {
	case "echo":
		md := ttrpc.MD{}
		md.Set("k1", "a", "b")
		md.Set("K2", "c")
		ctx, cancel := context.WithTimeout(ttrpc.WithMetadata(bg, md), 30*time.Second)
		defer cancel()
		out["echo"] = call(c, ctx, serviceName, "Echo", &EchoRequest{Payload: []byte("hello from go")})
		out["empty"] = call(c, bg, serviceName, "Echo", &EchoRequest{})
	case "errors":
		out["fail"] = call(c, bg, serviceName, "Echo", &EchoRequest{FailCode: int32(codes.NotFound), FailMessage: "no such container"})
		out["fail_precondition"] = call(c, bg, serviceName, "Echo", &EchoRequest{FailCode: int32(codes.FailedPrecondition), FailMessage: "not running"})
		out["unknown_service"] = call(c, bg, "qemubox.test.v1.Nope", "Echo", &EchoRequest{})
		out["unknown_method"] = call(c, bg, serviceName, "Nope", &EchoRequest{})
	case "deadline":
		ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
		defer cancel()
		out["sleep"] = call(c, ctx, serviceName, "Echo", &EchoRequest{SleepMs: 5000})
		out["after"] = call(c, bg, serviceName, "Echo", &EchoRequest{Payload: []byte("still alive")})
	case "oversize":
		big := make([]byte, 5<<20)
		out["oversize"] = call(c, bg, serviceName, "Echo", &EchoRequest{Payload: big})
		out["after"] = call(c, bg, serviceName, "Echo", &EchoRequest{Payload: []byte("still alive")})
	case "concurrent":
		var wg sync.WaitGroup
		var ok, bad int64
		var firstErr atomic.Value
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				want := fmt.Sprintf("call-%d", i)
				r := call(c, bg, serviceName, "Echo", &EchoRequest{Payload: []byte(want), SleepMs: int64(i % 7)})
				if r.Code == 0 && r.Payload == want {
					atomic.AddInt64(&ok, 1)
				} else {
					atomic.AddInt64(&bad, 1)
					firstErr.Store(fmt.Sprintf("%d: %+v", i, r))
				}
			}(i)
		}
		wg.Wait()
		out["ok"], out["bad"], out["first_error"] = ok, bad, firstErr.Load()
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", scenario)
		os.Exit(2)
	}
	must(json.NewEncoder(os.Stdout).Encode(out))
}

func bench(path string, d time.Duration, size, concurrency int) {
	conn, err := net.Dial("unix", path)
	must(err)
	c := ttrpc.NewClient(conn)
	defer c.Close()
	payload := make([]byte, size)
	var calls, failures int64
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				var resp EchoResponse
				if err := c.Call(context.Background(), serviceName, "Echo", &EchoRequest{Payload: payload}, &resp); err != nil || len(resp.Payload) != size {
					atomic.AddInt64(&failures, 1)
					continue
				}
				atomic.AddInt64(&calls, 1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	// The client's own CPU time (user + system), so a benchmark can tell CPU per call
	// on each side apart from wall-clock rate.
	var usage syscall.Rusage
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &usage))
	cpu := float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e9
	must(json.NewEncoder(os.Stdout).Encode(map[string]interface{}{
		"calls": calls, "failures": failures, "seconds": secs, "cpu_seconds": cpu,
		"calls_per_sec": float64(calls) / secs,
		"mb_per_sec":    float64(calls) * float64(size) * 2 / secs / 1e6,
	}))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "ttrpc-peer:", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: ttrpc-peer server|client|bench [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	socket := fs.String("socket", "", "unix socket path")
	scenario := fs.String("scenario", "echo", "client scenario")
	n := fs.Int("n", 1000, "concurrent calls")
	duration := fs.Duration("duration", 3*time.Second, "bench duration")
	size := fs.Int("size", 0, "bench payload size")
	concurrency := fs.Int("concurrency", 1, "bench concurrency")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "server":
		serve(*socket)
	case "client":
		client(*socket, *scenario, *n)
	case "bench":
		bench(*socket, *duration, *size, *concurrency)
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
