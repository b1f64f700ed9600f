// refserver is the benchmark's "proxy-ref" target: containerd's own local
// content store (content/local) served over gRPC by containerd's own
// contentserver, for containerd to use as its content proxy plugin. It is the
// best any proxy plugin could do behind the proxy hop, so the proxy rows have
// a ceiling to be read against.
//
// Usage: refserver <root> <unix socket>
package main

import (
	"net"
	"os"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	"github.com/containerd/containerd/content/local"
	"github.com/containerd/containerd/services/content/contentserver"
	"google.golang.org/grpc"
)

func main() {
	cs, err := local.NewStore(os.Args[1])
	if err != nil {
		panic(err)
	}
	os.Remove(os.Args[2])
	l, err := net.Listen("unix", os.Args[2])
	if err != nil {
		panic(err)
	}
	s := grpc.NewServer(grpc.MaxRecvMsgSize(16<<20), grpc.MaxSendMsgSize(16<<20))
	contentapi.RegisterContentServer(s, contentserver.New(cs))
	s.Serve(l)
}
