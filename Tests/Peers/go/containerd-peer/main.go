// containerd-peer drives qemubox's Swift code with containerd's own Go API
// packages (Debian's github.com/containerd/containerd sources, GOPATH mode):
//
//	containerd-peer task-client -socket PATH     call a Swift containerd.task.v2.Task server, print JSON
//	containerd-peer events-server -socket PATH   serve containerd.services.events.ttrpc.v1.Events,
//	                                             print each forwarded envelope as a JSON line
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	ttrpcevents "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/runtime/v2/task"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl"
	ptypes "github.com/gogo/protobuf/types"
)

func taskClient(path string) {
	conn, err := net.Dial("unix", path)
	must(err)
	client := ttrpc.NewClient(conn)
	defer client.Close()
	svc := task.NewTaskClient(client)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]interface{}{}

	created, err := svc.Create(ctx, &task.CreateTaskRequest{
		ID: "c1", Bundle: "/run/bundle/c1", Terminal: true, Stdout: "/fifo/out",
		Rootfs: []*types.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/a:/b", "upperdir=/u"}}},
	})
	if err != nil {
		out["create_error"] = err.Error()
	} else {
		out["create_pid"] = created.Pid
	}
	state, err := svc.State(ctx, &task.StateRequest{ID: "c1"})
	if err == nil {
		out["state"] = map[string]interface{}{"id": state.ID, "bundle": state.Bundle, "pid": state.Pid,
			"status": state.Status.String(), "stdout": state.Stdout, "terminal": state.Terminal}
	} else {
		out["state_error"] = err.Error()
	}
	_, err = svc.State(ctx, &task.StateRequest{ID: "missing"})
	out["missing_is_not_found"] = errdefs.IsNotFound(errdefs.FromGRPC(err))
	_, err = svc.Create(ctx, &task.CreateTaskRequest{ID: "c1"})
	out["duplicate_is_already_exists"] = errdefs.IsAlreadyExists(errdefs.FromGRPC(err))
	_, err = svc.Checkpoint(ctx, &task.CheckpointTaskRequest{ID: "c1"})
	out["checkpoint_is_not_implemented"] = errdefs.IsNotImplemented(errdefs.FromGRPC(err))
	_, err = svc.Kill(ctx, &task.KillRequest{ID: "c1", Signal: 9, All: true})
	out["kill_error"] = fmt.Sprint(err)
	must(json.NewEncoder(os.Stdout).Encode(out))
}

type eventsServer struct{}

func (eventsServer) Forward(ctx context.Context, r *ttrpcevents.ForwardRequest) (*ptypes.Empty, error) {
	line := map[string]interface{}{"namespace": r.Envelope.Namespace, "topic": r.Envelope.Topic,
		"type_url": r.Envelope.Event.TypeUrl, "timestamp": r.Envelope.Timestamp.UnixNano()}
	if v, err := typeurl.UnmarshalAny(r.Envelope.Event); err == nil {
		if exit, ok := v.(*eventsapi.TaskExit); ok {
			line["container_id"], line["exit_status"], line["pid"] = exit.ContainerID, exit.ExitStatus, exit.Pid
		}
	} else {
		line["decode_error"] = err.Error()
	}
	b, _ := json.Marshal(line)
	fmt.Println(string(b))
	return &ptypes.Empty{}, nil
}

func serveEvents(path string) {
	s, err := ttrpc.NewServer()
	must(err)
	ttrpcevents.RegisterEventsService(s, eventsServer{})
	os.Remove(path)
	l, err := net.Listen("unix", path)
	must(err)
	go func() {
		io.Copy(io.Discard, os.Stdin)
		s.Close()
		os.Remove(path)
		os.Exit(0)
	}()
	fmt.Println("ready")
	s.Serve(context.Background(), l)
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "containerd-peer:", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: containerd-peer task-client|events-server -socket PATH")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	socket := fs.String("socket", "", "unix socket path")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "task-client":
		taskClient(*socket)
	case "events-server":
		serveEvents(*socket)
	default:
		os.Exit(2)
	}
}
