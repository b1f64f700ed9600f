// Package conformance runs containerd's content store test suite
// (github.com/containerd/containerd/content/testsuite) against a contentd
// server, or against a containerd daemon that uses contentd as its content
// proxy plugin, through containerd's gRPC content client
// (content/proxy.NewContentStore).
//
// It is built in GOPATH mode against Debian's containerd 1.6 sources:
//
//	GO111MODULE=off GOPATH=$PWD/test/conformance:/usr/share/gocode \
//	  go test -v contentd.local/conformance
//
// Environment:
//
//	CONTENTD_MODE           global (default) | namespaced | isolated | containerd
//	CONTENTD_ADDRESS        unix socket of a running server (all tests share it)
//	CONTENTD_SERVER_CMD     command that starts a server; when set, every test
//	                        starts its own server with "--address <sock> --root <dir>"
//	                        appended (and "--config $CONTENTD_SERVER_CONFIG" if set).
//	                        Either a JSON array of strings or a space separated string.
//	CONTENTD_SERVER_CONFIG  config file passed to servers started by the harness
//	CONTENTD_SERVER_LOG     "stderr": also copy server output to stderr
//
// Modes:
//
//	global      no namespace header; ContentSuite
//	namespaced  a fresh namespace per context; ContentSuite + ContentCrossNSSharedSuite
//	isolated    a fresh namespace per context; ContentCrossNSIsolatedSuite
//	            (the server must run with [namespaces] policy = "isolated")
//	containerd  CONTENTD_ADDRESS is containerd's socket; a fresh namespace and a
//	            lease per context; ContentSuite + ContentCrossNSSharedSuite
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/content/proxy"
	"github.com/containerd/containerd/content/testsuite"
	"github.com/containerd/containerd/leases"
	leasesproxy "github.com/containerd/containerd/leases/proxy"
	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/namespaces"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const (
	suiteName    = "contentd"
	maxMsgSize   = 16 << 20
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	logTailBytes = 8 << 10
)

type harness struct {
	mode         string
	address      string
	serverCmd    []string
	serverConfig string
	runID        string
	tests        uint64
}

func TestContent(t *testing.T) {
	h := &harness{
		mode:         os.Getenv("CONTENTD_MODE"),
		address:      os.Getenv("CONTENTD_ADDRESS"),
		serverConfig: os.Getenv("CONTENTD_SERVER_CONFIG"),
		runID:        strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	if h.mode == "" {
		h.mode = "global"
	}
	if s := strings.TrimSpace(os.Getenv("CONTENTD_SERVER_CMD")); s != "" {
		cmd, err := parseCommand(s)
		if err != nil {
			t.Fatalf("CONTENTD_SERVER_CMD: %v", err)
		}
		h.serverCmd = cmd
	}
	if h.address == "" && len(h.serverCmd) == 0 {
		t.Skip("set CONTENTD_ADDRESS or CONTENTD_SERVER_CMD to run the conformance suite")
	}
	if h.mode == "containerd" && h.address == "" {
		t.Fatal("mode containerd needs CONTENTD_ADDRESS (containerd's socket)")
	}
	t.Logf("mode=%s address=%q server_cmd=%q config=%q", h.mode, h.address, h.serverCmd, h.serverConfig)

	switch h.mode {
	case "global":
		testsuite.ContentSuite(t, suiteName, h.storeFn)
	case "namespaced", "containerd":
		testsuite.ContentSuite(t, suiteName, h.storeFn)
		testsuite.ContentCrossNSSharedSuite(t, suiteName, h.storeFn)
	case "isolated":
		testsuite.ContentCrossNSIsolatedSuite(t, suiteName, h.storeFn)
	default:
		t.Fatalf("unknown CONTENTD_MODE %q (want global, namespaced, isolated or containerd)", h.mode)
	}
}

func parseCommand(s string) ([]string, error) {
	var argv []string
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &argv); err != nil {
			return nil, err
		}
	} else {
		argv = strings.Fields(s)
	}
	if len(argv) == 0 {
		return nil, errors.New("empty command")
	}
	return argv, nil
}

// storeFn is the testsuite.StoreInitFn; root is a fresh temporary directory
// per test, removed by the testsuite afterwards.
func (h *harness) storeFn(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
	var srv *server
	address := h.address
	if len(h.serverCmd) > 0 {
		var err error
		srv, err = startServer(h.serverCmd, root, h.serverConfig)
		if err != nil {
			return ctx, nil, nil, err
		}
		address = srv.socket
	}

	conn, err := dial(ctx, address, srv)
	if err != nil {
		if srv != nil {
			if serr := srv.stop(); serr != nil {
				err = fmt.Errorf("%w; %v", err, serr)
			}
		}
		return ctx, nil, nil, err
	}

	if h.mode != "containerd" {
		if err := waitServing(ctx, conn); err != nil {
			conn.Close()
			if srv != nil {
				srv.stop()
			}
			return ctx, nil, nil, err
		}
	}

	cs := proxy.NewContentStore(contentapi.NewContentClient(conn))

	if h.mode != "global" {
		var lm leases.Manager
		if h.mode == "containerd" {
			lm = leasesproxy.NewLeaseManager(leasesapi.NewLeasesClient(conn))
		}
		testID := atomic.AddUint64(&h.tests, 1)
		var contexts uint64
		wrap := func(ctx context.Context) (context.Context, func(context.Context) error, error) {
			// containerd namespace names: [A-Za-z0-9]+([._-][A-Za-z0-9]+)*, at most 76 chars.
			ns := fmt.Sprintf("%s-%s-t%d-n%d", suiteName, h.runID, testID, atomic.AddUint64(&contexts, 1))
			ctx = namespaces.WithNamespace(ctx, ns)
			var lease *leases.Lease
			if lm != nil {
				l, err := lm.Create(ctx, leases.WithRandomID(), leases.WithExpiration(time.Hour))
				if err != nil {
					return ctx, nil, fmt.Errorf("create lease in namespace %s: %w", ns, err)
				}
				lease = &l
				ctx = leases.WithLease(ctx, l.ID)
			}
			return ctx, func(ctx context.Context) error {
				cleanupNamespace(ctx, cs)
				if lease != nil {
					if err := lm.Delete(ctx, *lease); err != nil {
						return fmt.Errorf("delete lease %s: %w", lease.ID, err)
					}
				}
				return nil
			}, nil
		}
		ctx = testsuite.SetContextWrapper(ctx, wrap)
	}

	logCtx := ctx
	return ctx, cs, func() error {
		cerr := conn.Close()
		if srv == nil {
			return cerr
		}
		serr := srv.stop()
		if tail := strings.TrimRight(srv.out.String(), "\n"); tail != "" {
			for _, line := range strings.Split(tail, "\n") {
				log.G(logCtx).Info("server: " + line)
			}
		}
		if serr != nil {
			return serr
		}
		return cerr
	}, nil
}

// cleanupNamespace removes what a test left in its namespace on a shared
// server. Best effort: failures are logged, not reported.
func cleanupNamespace(ctx context.Context, cs content.Store) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	statuses, err := cs.ListStatuses(ctx)
	if err != nil {
		log.G(ctx).WithError(err).Warn("cleanup: list statuses")
	}
	for _, st := range statuses {
		if err := cs.Abort(ctx, st.Ref); err != nil {
			log.G(ctx).WithError(err).Warnf("cleanup: abort %s", st.Ref)
		}
	}
	var blobs []content.Info
	if err := cs.Walk(ctx, func(info content.Info) error {
		blobs = append(blobs, info)
		return nil
	}); err != nil {
		log.G(ctx).WithError(err).Warn("cleanup: walk")
	}
	for _, info := range blobs {
		if err := cs.Delete(ctx, info.Digest); err != nil {
			log.G(ctx).WithError(err).Warnf("cleanup: delete %s", info.Digest)
		}
	}
}

func dial(ctx context.Context, address string, srv *server) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if srv != nil {
		// Cancel the dial as soon as the server process dies.
		go func() {
			select {
			case <-srv.exited:
				cancel()
			case <-ctx.Done():
			}
		}()
	}
	bc := backoff.DefaultConfig
	bc.BaseDelay = 50 * time.Millisecond
	bc.MaxDelay = 500 * time.Millisecond
	conn, err := grpc.DialContext(ctx, "unix://"+address,
		grpc.WithInsecure(),
		grpc.WithBlock(),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: time.Second}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(maxMsgSize),
			grpc.MaxCallSendMsgSize(maxMsgSize),
		),
	)
	if err != nil {
		if srv != nil && srv.hasExited() {
			return nil, fmt.Errorf("dial %s: server exited (%v) before accepting connections; output:\n%s", address, srv.waitErr, srv.out.String())
		}
		return nil, fmt.Errorf("dial %s: %w", address, err)
	}
	return conn, nil
}

// waitServing polls the gRPC health service until the server reports
// SERVING: contentd accepts connections while it opens its store and
// answers UNAVAILABLE until it has.
func waitServing(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	client := healthpb.NewHealthClient(conn)
	for {
		res, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && res.Status == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server not SERVING within %s (last status %v, error %v)", startTimeout, res.GetStatus(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

type server struct {
	cmd     *exec.Cmd
	socket  string
	out     *tailBuffer
	exited  chan struct{}
	waitErr error
	stopped bool
}

func startServer(argv []string, root, config string) (*server, error) {
	socket := filepath.Join(root, "contentd.sock")
	args := append(append([]string{}, argv[1:]...), "--address", socket, "--root", filepath.Join(root, "data"))
	if config != "" {
		args = append(args, "--config", config)
	}
	cmd := exec.Command(argv[0], args...)
	out := &tailBuffer{max: logTailBytes}
	var w io.Writer = out
	if os.Getenv("CONTENTD_SERVER_LOG") == "stderr" {
		w = io.MultiWriter(out, os.Stderr)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	// The server dies with the test binary (e.g. on -test.timeout panics).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start server %q: %w", argv, err)
	}
	s := &server{cmd: cmd, socket: socket, out: out, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	// Wait for the socket to appear before dialing.
	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := os.Stat(socket); err == nil {
			return s, nil
		}
		if s.hasExited() {
			return nil, fmt.Errorf("server %q exited (%v) before creating %s; output:\n%s", argv, s.waitErr, socket, out.String())
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("server %q did not create %s within %s; output:\n%s", argv, socket, startTimeout, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) hasExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for a clean exit; it reports a server that
// died on its own, that needed SIGKILL, or that exited with an error.
func (s *server) stop() error {
	if s.stopped {
		return nil
	}
	s.stopped = true
	if s.hasExited() {
		return fmt.Errorf("server exited unexpectedly during the test: %v; output:\n%s", s.waitErr, s.out.String())
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return fmt.Errorf("server did not exit within %s of SIGTERM; output:\n%s", stopTimeout, s.out.String())
	}
	if s.waitErr != nil {
		var ee *exec.ExitError
		if errors.As(s.waitErr, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return nil // no SIGTERM handler: acceptable
			}
		}
		return fmt.Errorf("server exited with %v after SIGTERM; output:\n%s", s.waitErr, s.out.String())
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if over := b.buf.Len() - b.max; over > 0 {
		b.buf.Next(over)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
