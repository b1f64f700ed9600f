// benchclient is the benchmark's Go client: containerd's own content proxy
// client (content/proxy, the code containerd runs in front of a proxy
// plugin) driving a content store over its unix socket. It reads one JSON
// command per line on stdin and answers each with one JSON line on stdout;
// every command runs a whole benchmark row, so the client costs what
// containerd's client costs, not a pipe round trip per call.
//
// Usage: benchclient
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/content/proxy"
	"github.com/containerd/containerd/namespaces"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"
)

const mib = 1 << 20

// poolPages random 1 MiB pages make up every big blob, each page stamped
// with the blob's seed and its index: every blob has its own digest.
const poolPages = 8

type command struct {
	Op          string            `json:"op"`
	Address     string            `json:"address"`
	Namespace   string            `json:"namespace"`
	Ref         string            `json:"ref"`
	Size        int64             `json:"size"`
	Seed        uint32            `json:"seed"`
	Chunk       int               `json:"chunk"`
	Count       int               `json:"count"`
	Calls       int               `json:"calls"`
	Concurrency int               `json:"concurrency"`
	Digest      string            `json:"digest"`
	Digests     []string          `json:"digests"`
	Labels      map[string]string `json:"labels"`
}

type result struct {
	Seconds float64 `json:"seconds"`
	// CPU seconds spent preparing (generating and hashing the data), outside the timed part.
	PrepareCPU float64  `json:"prepareCpu"`
	Digest     string   `json:"digest,omitempty"`
	Digests    []string `json:"digests,omitempty"`
	Error      string   `json:"error,omitempty"`
}

type client struct {
	pool   [][]byte
	stores map[string]content.Store
	// Digests of synthetic blobs by size and seed: the same blob for every target.
	made map[[2]int64]digest.Digest
}

func main() {
	c := &client{stores: map[string]content.Store{}, made: map[[2]int64]digest.Digest{}}
	for i := 0; i < poolPages; i++ {
		page := make([]byte, mib)
		if _, err := rand.Read(page); err != nil {
			panic(err)
		}
		c.pool = append(c.pool, page)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var cmd command
		res := result{}
		if err := json.Unmarshal(in.Bytes(), &cmd); err != nil {
			res.Error = err.Error()
		} else if err := c.run(&cmd, &res); err != nil {
			res.Error = err.Error()
		}
		if err := out.Encode(res); err != nil {
			panic(err)
		}
	}
}

func (c *client) store(address string) (content.Store, error) {
	if cs, ok := c.stores[address]; ok {
		return cs, nil
	}
	conn, err := grpc.Dial(address,
		grpc.WithInsecure(),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20), grpc.MaxCallSendMsgSize(16<<20)),
	)
	if err != nil {
		return nil, err
	}
	cs := proxy.NewContentStore(contentapi.NewContentClient(conn))
	c.stores[address] = cs
	return cs, nil
}

func (c *client) run(cmd *command, res *result) error {
	cs, err := c.store(cmd.Address)
	if err != nil {
		return err
	}
	// Each command is one operation with its own context, as each of
	// containerd's is: the proxy writer never reads its Write stream to the
	// end, so grpc-go keeps every such stream (and a goroutine) until its
	// context ends; under one context for the whole run thousands of them
	// stayed live and doubled the client's CPU per byte read in later rows.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if cmd.Namespace != "" {
		ctx = namespaces.WithNamespace(ctx, cmd.Namespace)
	}
	started := time.Now()
	cpuAtStart := cpuSeconds()
	// prepared ends the untimed part: the data generated, its digests computed.
	prepared := func() {
		res.PrepareCPU = cpuSeconds() - cpuAtStart
		started = time.Now()
	}
	switch cmd.Op {
	case "ingest":
		dgst := c.digestOf(cmd.Size, cmd.Seed)
		prepared()
		err = c.ingest(ctx, cs, cmd, dgst)
		res.Digest = dgst.String()
	case "read":
		err = read(ctx, cs, digest.Digest(cmd.Digest), cmd.Size, cmd.Chunk)
	case "commit-small":
		blobs := make([][]byte, cmd.Count)
		for i := range blobs {
			blobs[i] = make([]byte, cmd.Size)
			if _, err := rand.Read(blobs[i]); err != nil {
				return err
			}
			res.Digests = append(res.Digests, digest.FromBytes(blobs[i]).String())
		}
		prepared()
		err = inParallel(cmd.Count, cmd.Concurrency, func(i int) error {
			// One blob, one context: in containerd each blob's write is its own request.
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			desc := ocispec.Descriptor{Digest: digest.Digest(res.Digests[i]), Size: int64(len(blobs[i]))}
			return content.WriteBlob(ctx, cs, fmt.Sprintf("%s-%d", cmd.Ref, i), bytes.NewReader(blobs[i]), desc, content.WithLabels(cmd.Labels))
		})
	case "info":
		err = inParallel(cmd.Calls, cmd.Concurrency, func(i int) error {
			_, err := cs.Info(ctx, digest.Digest(cmd.Digests[i%len(cmd.Digests)]))
			return err
		})
	case "read-small":
		err = inParallel(len(cmd.Digests), cmd.Concurrency, func(i int) error {
			return read(ctx, cs, digest.Digest(cmd.Digests[i]), 0, 0)
		})
	default:
		err = fmt.Errorf("unknown op %q", cmd.Op)
	}
	res.Seconds = time.Since(started).Seconds()
	return err
}

// cpuSeconds is the CPU time (user and system) this process has used.
func cpuSeconds() float64 {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e9
}

// page is page index of the synthetic blob (size, seed), written into buf.
func (c *client) page(buf []byte, seed uint32, index int) {
	copy(buf, c.pool[(index+int(seed))%poolPages])
	if len(buf) >= 8 {
		binary.LittleEndian.PutUint32(buf[0:], seed)
		binary.LittleEndian.PutUint32(buf[4:], uint32(index))
	}
}

func (c *client) digestOf(size int64, seed uint32) digest.Digest {
	key := [2]int64{size, int64(seed)}
	if d, ok := c.made[key]; ok {
		return d
	}
	digester := digest.Canonical.Digester()
	buf := make([]byte, mib)
	for index := 0; int64(index)*mib < size; index++ {
		n := size - int64(index)*mib
		if n > mib {
			n = mib
		}
		c.page(buf[:n], seed, index)
		digester.Hash().Write(buf[:n])
	}
	c.made[key] = digester.Digest()
	return c.made[key]
}

// ingest writes the synthetic blob in 1 MiB writes through containerd's remote
// writer (one Write request and response at a time), size and digest declared.
func (c *client) ingest(ctx context.Context, cs content.Store, cmd *command, dgst digest.Digest) error {
	desc := ocispec.Descriptor{Digest: dgst, Size: cmd.Size}
	w, err := cs.Writer(ctx, content.WithRef(cmd.Ref), content.WithDescriptor(desc))
	if err != nil {
		return err
	}
	defer w.Close()
	buf := make([]byte, mib)
	for index := 0; int64(index)*mib < cmd.Size; index++ {
		n := cmd.Size - int64(index)*mib
		if n > mib {
			n = mib
		}
		c.page(buf[:n], cmd.Seed, index)
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
	}
	return w.Commit(ctx, cmd.Size, dgst, content.WithLabels(cmd.Labels))
}

// read reads a blob through one ReaderAt (an Info, then a Read stream per
// ReadAt), chunk bytes per call; chunk 0 reads it in one call.
func read(ctx context.Context, cs content.Store, dgst digest.Digest, size int64, chunk int) error {
	ra, err := cs.ReaderAt(ctx, ocispec.Descriptor{Digest: dgst, Size: size})
	if err != nil {
		return err
	}
	defer ra.Close()
	if chunk <= 0 {
		chunk = int(ra.Size())
	}
	buf := make([]byte, chunk)
	for offset := int64(0); offset < ra.Size(); {
		want := buf
		if rest := ra.Size() - offset; rest < int64(len(want)) {
			want = want[:rest]
		}
		n, err := ra.ReadAt(want, offset)
		if n == 0 && err != nil {
			return fmt.Errorf("read of %s at %d: %w", dgst, offset, err)
		}
		offset += int64(n)
	}
	return nil
}

// inParallel runs fn(0..count-1) with at most limit calls in flight; the first error wins.
func inParallel(count, limit int, fn func(int) error) error {
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	if limit < 1 {
		limit = 1
	}
	for w := 0; w < limit && w < count; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := i >= count || first != nil
				mu.Unlock()
				if stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}
