package conformance

// TestLeases drives contentd's Leases service with containerd's own lease
// client (leases/proxy.NewLeaseManager) and content client, the way
// containerd's tools use them: leases created with labels and expirations,
// resources, the containerd-lease header on writes, synchronous deletes that
// garbage-collect before returning, filters and containerd's error codes.
//
// It runs against a server at CONTENTD_ADDRESS, or starts one with
// CONTENTD_SERVER_CMD. With CONTENTD_MODE=containerd the address is
// containerd's socket: the same checks then hold for containerd's own lease
// manager, except the contentd-specific handling of unknown lease ids.

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	leasesapi "github.com/containerd/containerd/api/services/leases/v1"
	"github.com/containerd/containerd/content"
	"github.com/containerd/containerd/content/proxy"
	"github.com/containerd/containerd/errdefs"
	"github.com/containerd/containerd/leases"
	leasesproxy "github.com/containerd/containerd/leases/proxy"
	"github.com/containerd/containerd/namespaces"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	labelExpire   = "containerd.io/gc.expire"
	labelImplicit = "contentd.io/implicit"
)

type leaseEnv struct {
	lm     leases.Manager
	cs     content.Store
	mode   string
	prefix string
	n      uint64
}

// ctx returns a context in a namespace of its own.
func (e *leaseEnv) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return namespaces.WithNamespace(ctx, fmt.Sprintf("%s-%d", e.prefix, atomic.AddUint64(&e.n, 1)))
}

func TestLeases(t *testing.T) {
	mode := os.Getenv("CONTENTD_MODE")
	address := os.Getenv("CONTENTD_ADDRESS")
	if address == "" {
		s := strings.TrimSpace(os.Getenv("CONTENTD_SERVER_CMD"))
		if s == "" {
			t.Skip("set CONTENTD_ADDRESS or CONTENTD_SERVER_CMD to run the leases tests")
		}
		argv, err := parseCommand(s)
		if err != nil {
			t.Fatalf("CONTENTD_SERVER_CMD: %v", err)
		}
		srv, err := startServer(argv, t.TempDir(), os.Getenv("CONTENTD_SERVER_CONFIG"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := srv.stop(); err != nil {
				t.Error(err)
			}
		})
		address = srv.socket
	}
	conn, err := dial(context.Background(), address, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if mode != "containerd" {
		if err := waitServing(context.Background(), conn); err != nil {
			t.Fatal(err)
		}
	}
	e := &leaseEnv{
		lm:     leasesproxy.NewLeaseManager(leasesapi.NewLeasesClient(conn)),
		cs:     proxy.NewContentStore(contentapi.NewContentClient(conn)),
		mode:   mode,
		prefix: fmt.Sprintf("leases-%d", time.Now().UnixNano()),
	}

	t.Run("CreateListDelete", e.testCreateListDelete)
	t.Run("Filters", e.testFilters)
	t.Run("Resources", e.testResources)
	t.Run("WriteUnderLease", e.testWriteUnderLease)
	t.Run("SyncDeleteCollects", e.testSyncDeleteCollects)
	t.Run("ExpiredLeaseReleases", e.testExpiredLeaseReleases)
	if mode != "containerd" {
		t.Run("UnknownLeaseIsImplicit", e.testUnknownLeaseIsImplicit)
	}
}

func (e *leaseEnv) testCreateListDelete(t *testing.T) {
	ctx := e.ctx(t)
	l, err := e.lm.Create(ctx, leases.WithRandomID(), leases.WithLabels(map[string]string{"purpose": "conformance"}), leases.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if l.ID == "" || l.CreatedAt.IsZero() || l.Labels["purpose"] != "conformance" || l.Labels[labelExpire] == "" {
		t.Fatalf("unexpected lease %+v", l)
	}
	if time.Since(l.CreatedAt) > time.Minute || time.Until(l.CreatedAt) > time.Minute {
		t.Fatalf("created at %v, now %v", l.CreatedAt, time.Now())
	}
	if _, err := e.lm.Create(ctx, leases.WithID(l.ID)); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second create of %s: want AlreadyExists, got %v", l.ID, err)
	}
	listed, err := e.lm.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != l.ID || listed[0].Labels["purpose"] != "conformance" {
		t.Fatalf("list: %+v", listed)
	}
	if err := e.lm.Delete(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := e.lm.Delete(ctx, l); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: want NotFound, got %v", err)
	}
	if listed, err := e.lm.List(ctx); err != nil || len(listed) != 0 {
		t.Fatalf("list after delete: %+v, %v", listed, err)
	}
	// Leases are namespaced: none of this namespace's leases shows in another.
	if _, err := e.lm.Create(ctx, leases.WithID("kept")); err != nil {
		t.Fatal(err)
	}
	if listed, err := e.lm.List(e.ctx(t)); err != nil || len(listed) != 0 {
		t.Fatalf("list in another namespace: %+v, %v", listed, err)
	}
}

func (e *leaseEnv) testFilters(t *testing.T) {
	ctx := e.ctx(t)
	for id, labels := range map[string]map[string]string{
		"gold-1":   {"example.com/tier": "gold"},
		"silver-1": {"example.com/tier": "silver"},
		"plain-1":  nil,
	} {
		if _, err := e.lm.Create(ctx, leases.WithID(id), leases.WithLabels(labels)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		filters []string
		want    string
	}{
		{[]string{"id==gold-1"}, "gold-1"},
		{[]string{`labels."example.com/tier"==silver`}, "silver-1"},
		{[]string{`labels."example.com/tier"`}, "gold-1,silver-1"},
		{[]string{"id~=^p", "id==gold-1"}, "gold-1,plain-1"},
		{[]string{`id!=gold-1,labels."example.com/tier"`}, "silver-1"},
	} {
		listed, err := e.lm.List(ctx, tc.filters...)
		if err != nil {
			t.Fatalf("%q: %v", tc.filters, err)
		}
		var ids []string
		for _, l := range listed {
			ids = append(ids, l.ID)
		}
		sort.Strings(ids)
		if got := strings.Join(ids, ","); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.filters, got, tc.want)
		}
	}
	if _, err := e.lm.List(ctx, "labels.example.com/tier==gold"); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("malformed filter: want InvalidArgument, got %v", err)
	}
}

func (e *leaseEnv) testResources(t *testing.T) {
	ctx := e.ctx(t)
	l, err := e.lm.Create(ctx, leases.WithID("holder"))
	if err != nil {
		t.Fatal(err)
	}
	dgst := digest.FromString("resource")
	for _, r := range []leases.Resource{
		{ID: dgst.String(), Type: "content"},
		{ID: "ingest-ref", Type: "ingests"},
		{ID: "snap-1", Type: "snapshots/overlayfs"},
	} {
		if err := e.lm.AddResource(ctx, l, r); err != nil {
			t.Fatalf("add %+v: %v", r, err)
		}
	}
	rs, err := e.lm.ListResources(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rs); !strings.Contains(got, dgst.String()) || !strings.Contains(got, "ingest-ref") || !strings.Contains(got, "snapshots/overlayfs") || len(rs) != 3 {
		t.Fatalf("resources: %v", rs)
	}
	if err := e.lm.DeleteResource(ctx, l, leases.Resource{ID: "ingest-ref", Type: "ingests"}); err != nil {
		t.Fatal(err)
	}
	if rs, err := e.lm.ListResources(ctx, l); err != nil || len(rs) != 2 {
		t.Fatalf("after delete: %v, %v", rs, err)
	}
	if err := e.lm.AddResource(ctx, l, leases.Resource{ID: "not-a-digest", Type: "content"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad digest: want InvalidArgument, got %v", err)
	}
	if err := e.lm.AddResource(ctx, l, leases.Resource{ID: "x", Type: "snapshots"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("snapshot without snapshotter: want InvalidArgument, got %v", err)
	}
	if err := e.lm.AddResource(ctx, l, leases.Resource{ID: "x", Type: "containers"}); !errdefs.IsNotImplemented(err) {
		t.Fatalf("unsupported type: want NotImplemented, got %v", err)
	}
	missing := leases.Lease{ID: "missing"}
	if err := e.lm.AddResource(ctx, missing, leases.Resource{ID: "r", Type: "ingests"}); !errdefs.IsNotFound(err) {
		t.Fatalf("add to missing lease: want NotFound, got %v", err)
	}
	if _, err := e.lm.ListResources(ctx, missing); !errdefs.IsNotFound(err) {
		t.Fatalf("list missing lease: want NotFound, got %v", err)
	}
}

func randomBlob(t *testing.T, size int) ([]byte, ocispec.Descriptor) {
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(b), Size: int64(size)}
}

func (e *leaseEnv) testWriteUnderLease(t *testing.T) {
	ctx := e.ctx(t)
	l, err := e.lm.Create(ctx, leases.WithRandomID(), leases.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	lctx := leases.WithLease(ctx, l.ID)
	data, desc := randomBlob(t, 4096)
	w, err := content.OpenWriter(lctx, e.cs, content.WithRef("under-lease"), content.WithDescriptor(desc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:1000]); err != nil {
		t.Fatal(err)
	}
	rs, err := e.lm.ListResources(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Type != "ingests" {
		t.Fatalf("while writing: %v", rs)
	}
	if _, err := w.Write(data[1000:]); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(lctx, desc.Size, desc.Digest); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rs, err = e.lm.ListResources(ctx, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Type != "content" || rs[0].ID != desc.Digest.String() {
		t.Fatalf("after commit: %v", rs)
	}
}

func (e *leaseEnv) testSyncDeleteCollects(t *testing.T) {
	ctx := e.ctx(t)
	l, err := e.lm.Create(ctx, leases.WithRandomID())
	if err != nil {
		t.Fatal(err)
	}
	data, desc := randomBlob(t, 2048)
	if err := content.WriteBlob(leases.WithLease(ctx, l.ID), e.cs, "sync-delete", bytes.NewReader(data), desc); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.Info(ctx, desc.Digest); err != nil {
		t.Fatalf("held by the lease: %v", err)
	}
	if err := e.lm.Delete(ctx, l, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("after a synchronous delete of its only lease: want NotFound, got %v", err)
	}
}

func (e *leaseEnv) testExpiredLeaseReleases(t *testing.T) {
	ctx := e.ctx(t)
	expired, err := e.lm.Create(ctx, leases.WithID("expired"), leases.WithExpiration(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	live, err := e.lm.Create(ctx, leases.WithID("live"), leases.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	dataE, descE := randomBlob(t, 1024)
	dataL, descL := randomBlob(t, 1024)
	if err := content.WriteBlob(leases.WithLease(ctx, expired.ID), e.cs, "expired", bytes.NewReader(dataE), descE); err != nil {
		t.Fatal(err)
	}
	if err := content.WriteBlob(leases.WithLease(ctx, live.ID), e.cs, "live", bytes.NewReader(dataL), descL); err != nil {
		t.Fatal(err)
	}
	// Any synchronous delete runs a collection: use a throw-away lease.
	trigger, err := e.lm.Create(ctx, leases.WithID("trigger"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.lm.Delete(ctx, trigger, leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.Info(ctx, descE.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("content of the expired lease: want NotFound, got %v", err)
	}
	if _, err := e.cs.Info(ctx, descL.Digest); err != nil {
		t.Fatalf("content of the live lease: %v", err)
	}
	listed, err := e.lm.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != "live" {
		t.Fatalf("leases after collection: %+v", listed)
	}
}

func (e *leaseEnv) testUnknownLeaseIsImplicit(t *testing.T) {
	ctx := e.ctx(t)
	data, desc := randomBlob(t, 512)
	if err := content.WriteBlob(leases.WithLease(ctx, "owned-by-containerd"), e.cs, "implicit", bytes.NewReader(data), desc); err != nil {
		t.Fatalf("write under a lease the store does not know: %v", err)
	}
	listed, err := e.lm.List(ctx, "id==owned-by-containerd")
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].Labels[labelImplicit] != "true" {
		t.Fatalf("implicit lease: %+v", listed)
	}
	if err := e.lm.Delete(ctx, listed[0], leases.SynchronousDelete); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.Info(ctx, desc.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("after deleting the implicit lease: want NotFound, got %v", err)
	}
}

