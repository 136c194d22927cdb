// yamuxpeer: the Go hashicorp/yamux side of VsockTransport's interop tests.
//
// Built in GOPATH mode from Debian's golang-github-hashicorp-yamux-dev:
//   GO111MODULE=off GOPATH=/usr/share/gocode go build -o yamuxpeer .
//
// Server mode (-listen PATH): accepts one unix connection, runs a yamux server
// session on it and serves the command protocol on every stream it accepts.
// Client mode (-connect PATH -scenario NAME): runs a yamux client session and
// drives a scenario against a Swift peer serving the same protocol; prints
// "OK <details>" and exits 0, or prints "FAIL <reason>" and exits 1.
//
// Command protocol (the first line of every stream):
//   echo                 echo all bytes until EOF, then close
//   sink N DELAYMS       read N bytes, sleeping DELAYMS after each read; reply "<fnv-1a 64 hex> <count>\n", close
//   discard N            read N bytes, reply "<count>\n", close
//   source N             send N pattern bytes (byte i = i % 251), close
//   goaway               send go-away on the session, reply "ok\n", close
//   hold                 never read nor write (until the session ends)
package main

import (
	"bufio"
	"bytes"
	"hash/fnv"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

var (
	listen   = flag.String("listen", "", "unix socket path to listen on (server mode)")
	connect  = flag.String("connect", "", "unix socket path to connect to (client mode)")
	scenario = flag.String("scenario", "", "client scenario: echo100, slow, halfclose, reset, goaway")
	backlog  = flag.Int("backlog", 256, "yamux AcceptBacklog")
	noAccept = flag.Bool("noaccept", false, "server: never accept streams (to provoke RST on backlog overflow)")
	window   = flag.Int("window", 256*1024, "yamux MaxStreamWindowSize")
	bytesN   = flag.Int("bytes", 256<<20, "bench: total bytes")
	streamsN = flag.Int("streams", 1, "bench: parallel streams")
)

func config() *yamux.Config {
	c := yamux.DefaultConfig()
	c.AcceptBacklog = *backlog
	c.MaxStreamWindowSize = uint32(*window)
	c.LogOutput = os.Stderr
	return c
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	return strings.TrimSpace(line), err
}

func serve(sess *yamux.Session, s net.Conn) {
	defer s.Close()
	r := bufio.NewReader(s)
	line, err := readLine(r)
	if err != nil {
		return
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return
	}
	switch f[0] {
	case "echo":
		io.Copy(s, r)
	case "sink":
		n, _ := strconv.Atoi(f[1])
		delay, _ := strconv.Atoi(f[2])
		h := fnv.New64a()
		buf := make([]byte, 64*1024)
		got := 0
		for got < n {
			k, err := r.Read(buf)
			h.Write(buf[:k])
			got += k
			if err != nil {
				break
			}
			if delay > 0 {
				time.Sleep(time.Duration(delay) * time.Millisecond)
			}
		}
		fmt.Fprintf(s, "%016x %d\n", h.Sum64(), got)
	case "discard":
		n, _ := strconv.Atoi(f[1])
		got, _ := io.CopyN(ioutil.Discard, r, int64(n))
		fmt.Fprintf(s, "%d\n", got)
	case "source":
		n, _ := strconv.Atoi(f[1])
		p := pattern(251 * 256)
		for n > 0 {
			k := len(p)
			if k > n {
				k = n
			}
			if _, err := s.Write(p[:k]); err != nil {
				return
			}
			n -= k
		}
	case "goaway":
		sess.GoAway()
		s.Write([]byte("ok\n"))
	case "hold":
		<-sess.CloseChan()
	}
}

func runServer() {
	l, err := net.Listen("unix", *listen)
	if err != nil {
		fmt.Println("FAIL listen:", err)
		os.Exit(1)
	}
	fmt.Println("LISTENING")
	conn, err := l.Accept()
	if err != nil {
		fmt.Println("FAIL accept:", err)
		os.Exit(1)
	}
	l.Close()
	sess, err := yamux.Server(conn, config())
	if err != nil {
		fmt.Println("FAIL session:", err)
		os.Exit(1)
	}
	if *noAccept {
		<-sess.CloseChan()
		return
	}
	for {
		s, err := sess.Accept()
		if err != nil {
			return
		}
		go serve(sess, s)
	}
}

func fail(format string, a ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", a...)
	os.Exit(1)
}

// echoRoundTrip sends size random bytes through an echo stream and checks them.
func echoRoundTrip(sess *yamux.Session, size int, seed int64) error {
	s, err := sess.OpenStream()
	if err != nil {
		return err
	}
	defer s.Close()
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data)
	if _, err := s.Write([]byte("echo\n")); err != nil {
		return err
	}
	// This yamux version's Read returns EOF as soon as the stream is locally
	// closed with nothing buffered, so read everything back before Close.
	errc := make(chan error, 1)
	go func() {
		_, err := s.Write(data)
		errc <- err
	}()
	back := make([]byte, size)
	if _, err := io.ReadFull(s, back); err != nil {
		return fmt.Errorf("stream %d: %v", s.StreamID(), err)
	}
	if err := <-errc; err != nil {
		return err
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("stream %d: echo mismatch (%d bytes back of %d)", s.StreamID(), len(back), size)
	}
	return nil
}

func echoMany(sess *yamux.Session, n int, maxSize int) error {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			size := 1 + rand.New(rand.NewSource(int64(i))).Intn(maxSize)
			if err := echoRoundTrip(sess, size, int64(i)); err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

func runClient() {
	conn, err := net.Dial("unix", *connect)
	if err != nil {
		fail("dial: %v", err)
	}
	sess, err := yamux.Client(conn, config())
	if err != nil {
		fail("session: %v", err)
	}
	defer sess.Close()
	switch *scenario {
	case "echo100":
		if err := echoMany(sess, 100, 256*1024); err != nil {
			fail("echo100: %v", err)
		}
		fmt.Println("OK echo100")
	case "slow":
		// 64 MiB to a slow reader on the Swift side while other streams keep flowing.
		const total = 64 << 20
		s, err := sess.OpenStream()
		if err != nil {
			fail("open: %v", err)
		}
		start := time.Now()
		sinkDone := make(chan string, 1)
		go func() {
			fmt.Fprintf(s, "sink %d 2\n", total)
			p := pattern(251 * 256)
			h := fnv.New64a()
			left := total
			for left > 0 {
				k := len(p)
				if k > left {
					k = left
				}
				if _, err := s.Write(p[:k]); err != nil {
					sinkDone <- "write: " + err.Error()
					return
				}
				h.Write(p[:k])
				left -= k
			}
			reply, _ := bufio.NewReader(s).ReadString('\n')
			s.Close()
			want := fmt.Sprintf("%016x %d", h.Sum64(), total)
			if strings.TrimSpace(reply) != want {
				sinkDone <- fmt.Sprintf("sink reply %q, want %q", reply, want)
				return
			}
			sinkDone <- ""
		}()
		time.Sleep(100 * time.Millisecond)
		if err := echoMany(sess, 20, 64*1024); err != nil {
			fail("echo during slow sink: %v", err)
		}
		echoMs := time.Since(start).Milliseconds()
		select {
		case msg := <-sinkDone:
			if msg == "" {
				fail("sink finished before the echo streams (%d ms): reader not slow?", echoMs)
			}
			fail("sink: %s", msg)
		default:
		}
		if msg := <-sinkDone; msg != "" {
			fail("sink: %s", msg)
		}
		fmt.Printf("OK slow echo=%dms sink=%dms\n", echoMs, time.Since(start).Milliseconds())
	case "halfclose":
		// The Swift side half-closes first; this side keeps writing afterwards.
		s, err := sess.OpenStream()
		if err != nil {
			fail("open: %v", err)
		}
		s.Write([]byte("source 100000\n"))
		data, err := io.ReadAll(s)
		if err != nil || !bytes.Equal(data, pattern(100000)) {
			fail("halfclose: %d bytes, %v", len(data), err)
		}
		if _, err := s.Write([]byte("written after the peer's FIN")); err != nil {
			fail("halfclose: write after the peer's FIN: %v", err)
		}
		s.Close()
		if err := echoRoundTrip(sess, 1000, 1); err != nil {
			fail("halfclose: session after: %v", err)
		}
		fmt.Println("OK halfclose")
	case "reset":
		s, err := sess.OpenStream()
		if err != nil {
			fail("open: %v", err)
		}
		s.Write([]byte("reset\n"))
		_, err = io.ReadAll(s)
		if err != yamux.ErrConnectionReset {
			fail("reset: read error %v, want connection reset", err)
		}
		if _, err := s.Write(bytes.Repeat([]byte("x"), 10)); err != yamux.ErrConnectionReset {
			fail("reset: write error %v, want connection reset", err)
		}
		fmt.Println("OK reset")
	case "goaway":
		s, err := sess.OpenStream()
		if err != nil {
			fail("open: %v", err)
		}
		s.Write([]byte("goaway\n"))
		reply, _ := bufio.NewReader(s).ReadString('\n')
		if reply != "ok\n" {
			fail("goaway reply %q", reply)
		}
		if _, err := sess.OpenStream(); err != yamux.ErrRemoteGoAway {
			fail("open after go-away: %v, want remote go-away", err)
		}
		fmt.Println("OK goaway")
	case "bench":
		// Throughput: -bytes split over -streams "discard" streams.
		per := *bytesN / *streamsN
		chunk := make([]byte, 64*1024)
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, *streamsN)
		for i := 0; i < *streamsN; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := sess.OpenStream()
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				fmt.Fprintf(s, "discard %d\n", per)
				for left := per; left > 0; {
					k := len(chunk)
					if k > left {
						k = left
					}
					if _, err := s.Write(chunk[:k]); err != nil {
						errs <- err
						return
					}
					left -= k
				}
				reply, err := bufio.NewReader(s).ReadString('\n')
				if strings.TrimSpace(reply) != strconv.Itoa(per) {
					errs <- fmt.Errorf("discard reply %q %v", reply, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			fail("bench: %v", err)
		}
		fmt.Printf("OK bench %d %.6f\n", per**streamsN, time.Since(start).Seconds())
	default:
		fail("unknown scenario %q", *scenario)
	}
}

func main() {
	flag.Parse()
	if *listen != "" {
		runServer()
	} else {
		runClient()
	}
}
