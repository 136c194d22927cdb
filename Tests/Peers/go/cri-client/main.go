// cri-client is a small crictl-like client of the CRI gRPC API (runtime.v1) for qemubox's
// tests: it drives containerd's CRI plugin the way the kubelet does. Built in GOPATH mode
// against Debian's grpc (1.33) and golang/protobuf (1.3) packages; its protocol code
// (runtimev1/) is generated from Tests/Peers/proto/cri/api.proto by
// scripts/generate-cri-client.sh.
//
//	cri-client -endpoint unix:///PATH [-timeout 2m] COMMAND ARGS...
//
//	version                          runtime name and versions (JSON)
//	info                             runtime conditions (JSON)
//	image-status REF                 the image as CRI sees it (JSON, null if unknown)
//	runp [-runtime H] POD.json       RunPodSandbox; prints the sandbox id
//	inspectp ID                      PodSandboxStatus (JSON: state, ip, netns, pid, info)
//	pods                             ListPodSandbox (JSON array)
//	stopp ID / rmp ID                StopPodSandbox / RemovePodSandbox
//	create SANDBOX CTR.json POD.json CreateContainer; prints the container id
//	start ID / rm ID                 StartContainer / RemoveContainer
//	stop [-t SECONDS] ID             StopContainer (grace period, default 0)
//	status ID                        ContainerStatus (JSON: state, exitCode, logPath, pid…)
//	ps [-pod ID]                     ListContainers (JSON array)
//	exec [-t SECONDS] ID -- CMD...   ExecSync: the command's stdout and stderr are copied,
//	                                 and cri-client exits with the command's exit code
//
// POD.json and CTR.json are PodSandboxConfig and ContainerConfig in protobuf's JSON form
// (field names as in the .proto or in lowerCamelCase). Errors (of the RPC or the client)
// are printed on stderr prefixed "cri-client: " and exit with status 200.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	pb "./runtimev1"

	"github.com/golang/protobuf/jsonpb"
	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
)

// clientFailure is the exit status of a failed RPC or a usage error (never a command's own).
const clientFailure = 200

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "cri-client: "+format+"\n", args...)
	os.Exit(clientFailure)
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func printJSON(v interface{}) {
	data, err := json.MarshalIndent(v, "", "  ")
	must(err)
	fmt.Println(string(data))
}

func readConfig(path string, message proto.Message) {
	file, err := os.Open(path)
	must(err)
	defer file.Close()
	if err := (&jsonpb.Unmarshaler{}).Unmarshal(file, message); err != nil {
		fail("%s: %v", path, err)
	}
}

// parseInfo decodes the verbose "info" entry containerd returns (itself JSON).
func parseInfo(info map[string]string) map[string]interface{} {
	parsed := map[string]interface{}{}
	if raw, ok := info["info"]; ok {
		_ = json.Unmarshal([]byte(raw), &parsed)
	}
	return parsed
}

// networkNamespace is the network namespace path of a runtime spec found in info.
func networkNamespace(info map[string]interface{}) string {
	spec, _ := info["runtimeSpec"].(map[string]interface{})
	linux, _ := spec["linux"].(map[string]interface{})
	namespaces, _ := linux["namespaces"].([]interface{})
	for _, entry := range namespaces {
		ns, _ := entry.(map[string]interface{})
		if ns["type"] == "network" {
			path, _ := ns["path"].(string)
			return path
		}
	}
	return ""
}

func dial(endpoint string, timeout time.Duration) *grpc.ClientConn {
	path := strings.TrimPrefix(endpoint, "unix://")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, path, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", addr)
		}))
	must(err)
	return conn
}

func needArgs(args []string, n int, usage string) {
	if len(args) != n {
		fail("usage: %s", usage)
	}
}

func main() {
	endpoint := flag.String("endpoint", "", "CRI endpoint, unix:///PATH")
	timeout := flag.Duration("timeout", 2*time.Minute, "deadline of each call")
	flag.Parse()
	args := flag.Args()
	if *endpoint == "" || len(args) == 0 {
		fail("usage: cri-client -endpoint unix:///PATH COMMAND ARGS... (see the source)")
	}
	conn := dial(*endpoint, *timeout)
	defer conn.Close()
	c := &client{runtime: pb.NewRuntimeServiceClient(conn), images: pb.NewImageServiceClient(conn), timeout: *timeout}
	command, rest := args[0], args[1:]
	handler, ok := commands[command]
	if !ok {
		fail("unknown command %q", command)
	}
	os.Exit(handler(c, rest))
}

type client struct {
	runtime pb.RuntimeServiceClient
	images  pb.ImageServiceClient
	timeout time.Duration
}

func (c *client) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.timeout)
}

var commands = map[string]func(*client, []string) int{
	"version":      (*client).version,
	"info":         (*client).info,
	"image-status": (*client).imageStatus,
	"runp":         (*client).runp,
	"inspectp":     (*client).inspectp,
	"pods":         (*client).pods,
	"stopp":        (*client).stopp,
	"rmp":          (*client).rmp,
	"create":       (*client).create,
	"start":        (*client).start,
	"stop":         (*client).stop,
	"rm":           (*client).rm,
	"status":       (*client).status,
	"ps":           (*client).ps,
	"exec":         (*client).exec,
}

func (c *client) version(args []string) int {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.runtime.Version(ctx, &pb.VersionRequest{Version: "v1"})
	must(err)
	printJSON(map[string]string{"version": r.Version, "runtimeName": r.RuntimeName,
		"runtimeVersion": r.RuntimeVersion, "runtimeApiVersion": r.RuntimeApiVersion})
	return 0
}

func (c *client) info(args []string) int {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.runtime.Status(ctx, &pb.StatusRequest{})
	must(err)
	conditions := map[string]interface{}{}
	for _, condition := range r.GetStatus().GetConditions() {
		conditions[condition.Type] = map[string]interface{}{"status": condition.Status,
			"reason": condition.Reason, "message": condition.Message}
	}
	printJSON(conditions)
	return 0
}

func (c *client) imageStatus(args []string) int {
	needArgs(args, 1, "image-status REF")
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.images.ImageStatus(ctx, &pb.ImageStatusRequest{Image: &pb.ImageSpec{Image: args[0]}})
	must(err)
	if r.Image == nil {
		printJSON(nil)
		return 0
	}
	printJSON(map[string]interface{}{"id": r.Image.Id, "repoTags": r.Image.RepoTags, "size": r.Image.Size})
	return 0
}

func (c *client) runp(args []string) int {
	flags := flag.NewFlagSet("runp", flag.ExitOnError)
	runtime := flags.String("runtime", "", "runtime handler")
	must(flags.Parse(args))
	needArgs(flags.Args(), 1, "runp [-runtime H] POD.json")
	config := &pb.PodSandboxConfig{}
	readConfig(flags.Arg(0), config)
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.runtime.RunPodSandbox(ctx, &pb.RunPodSandboxRequest{Config: config, RuntimeHandler: *runtime})
	must(err)
	fmt.Println(r.PodSandboxId)
	return 0
}

func (c *client) inspectp(args []string) int {
	needArgs(args, 1, "inspectp ID")
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.runtime.PodSandboxStatus(ctx, &pb.PodSandboxStatusRequest{PodSandboxId: args[0], Verbose: true})
	must(err)
	info := parseInfo(r.Info)
	s := r.GetStatus()
	printJSON(map[string]interface{}{"id": s.Id, "name": s.GetMetadata().GetName(), "state": s.State.String(),
		"ip": s.GetNetwork().GetIp(), "runtimeHandler": s.RuntimeHandler, "netns": networkNamespace(info),
		"pid": info["pid"], "labels": s.Labels, "annotations": s.Annotations})
	return 0
}

func (c *client) pods(args []string) int {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.runtime.ListPodSandbox(ctx, &pb.ListPodSandboxRequest{})
	must(err)
	items := []map[string]interface{}{}
	for _, p := range r.Items {
		items = append(items, map[string]interface{}{"id": p.Id, "name": p.GetMetadata().GetName(),
			"state": p.State.String(), "runtimeHandler": p.RuntimeHandler})
	}
	printJSON(items)
	return 0
}

func (c *client) stopp(args []string) int {
	needArgs(args, 1, "stopp ID")
	ctx, cancel := c.ctx()
	defer cancel()
	_, err := c.runtime.StopPodSandbox(ctx, &pb.StopPodSandboxRequest{PodSandboxId: args[0]})
	must(err)
	return 0
}

func (c *client) rmp(args []string) int {
	needArgs(args, 1, "rmp ID")
	ctx, cancel := c.ctx()
	defer cancel()
	_, err := c.runtime.RemovePodSandbox(ctx, &pb.RemovePodSandboxRequest{PodSandboxId: args[0]})
	must(err)
	return 0
}

func (c *client) create(args []string) int {
	needArgs(args, 3, "create SANDBOX CTR.json POD.json")
	config := &pb.ContainerConfig{}
	readConfig(args[1], config)
	sandbox := &pb.PodSandboxConfig{}
	readConfig(args[2], sandbox)
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.runtime.CreateContainer(ctx, &pb.CreateContainerRequest{PodSandboxId: args[0], Config: config,
		SandboxConfig: sandbox})
	must(err)
	fmt.Println(r.ContainerId)
	return 0
}

func (c *client) start(args []string) int {
	needArgs(args, 1, "start ID")
	ctx, cancel := c.ctx()
	defer cancel()
	_, err := c.runtime.StartContainer(ctx, &pb.StartContainerRequest{ContainerId: args[0]})
	must(err)
	return 0
}

func (c *client) stop(args []string) int {
	flags := flag.NewFlagSet("stop", flag.ExitOnError)
	grace := flags.Int64("t", 0, "grace period in seconds")
	must(flags.Parse(args))
	needArgs(flags.Args(), 1, "stop [-t SECONDS] ID")
	ctx, cancel := c.ctx()
	defer cancel()
	_, err := c.runtime.StopContainer(ctx, &pb.StopContainerRequest{ContainerId: flags.Arg(0), Timeout: *grace})
	must(err)
	return 0
}

func (c *client) rm(args []string) int {
	needArgs(args, 1, "rm ID")
	ctx, cancel := c.ctx()
	defer cancel()
	_, err := c.runtime.RemoveContainer(ctx, &pb.RemoveContainerRequest{ContainerId: args[0]})
	must(err)
	return 0
}

func (c *client) status(args []string) int {
	needArgs(args, 1, "status ID")
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.runtime.ContainerStatus(ctx, &pb.ContainerStatusRequest{ContainerId: args[0], Verbose: true})
	must(err)
	s := r.GetStatus()
	info := parseInfo(r.Info)
	mounts := []map[string]interface{}{}
	for _, m := range s.Mounts {
		mounts = append(mounts, map[string]interface{}{"containerPath": m.ContainerPath, "hostPath": m.HostPath,
			"readonly": m.Readonly, "propagation": m.Propagation.String()})
	}
	printJSON(map[string]interface{}{"id": s.Id, "name": s.GetMetadata().GetName(),
		"attempt": s.GetMetadata().GetAttempt(), "state": s.State.String(), "exitCode": s.ExitCode,
		"reason": s.Reason, "message": s.Message, "logPath": s.LogPath, "createdAt": s.CreatedAt,
		"startedAt": s.StartedAt, "finishedAt": s.FinishedAt, "pid": info["pid"],
		"sandboxId": info["sandboxID"], "mounts": mounts})
	return 0
}

func (c *client) ps(args []string) int {
	flags := flag.NewFlagSet("ps", flag.ExitOnError)
	pod := flags.String("pod", "", "sandbox id")
	must(flags.Parse(args))
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.runtime.ListContainers(ctx, &pb.ListContainersRequest{Filter: &pb.ContainerFilter{PodSandboxId: *pod}})
	must(err)
	items := []map[string]interface{}{}
	for _, ctr := range r.Containers {
		items = append(items, map[string]interface{}{"id": ctr.Id, "podSandboxId": ctr.PodSandboxId,
			"name": ctr.GetMetadata().GetName(), "attempt": ctr.GetMetadata().GetAttempt(), "state": ctr.State.String()})
	}
	printJSON(items)
	return 0
}

func (c *client) exec(args []string) int {
	flags := flag.NewFlagSet("exec", flag.ExitOnError)
	limit := flags.Int64("t", 0, "timeout in seconds (0: none)")
	must(flags.Parse(args))
	rest := flags.Args()
	if len(rest) < 3 || rest[1] != "--" {
		fail("usage: exec [-t SECONDS] ID -- CMD...")
	}
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.runtime.ExecSync(ctx, &pb.ExecSyncRequest{ContainerId: rest[0], Cmd: rest[2:], Timeout: *limit})
	must(err)
	os.Stdout.Write(r.Stdout)
	os.Stderr.Write(r.Stderr)
	return int(r.ExitCode)
}
