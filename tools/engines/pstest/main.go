// Command pstest serves Google's in-memory Pub/Sub fake (cloud.google.com/go/pubsub/v2/pstest) on 127.0.0.1, for
// the engine tests (tests/engines.py, tools/engines/README.md). Clients reach it through PUBSUB_EMULATOR_HOST.
//
// It prints one ready line, "pstest listening on HOST:PORT", once the gRPC server accepts connections, and runs
// until SIGINT or SIGTERM. Topics and subscriptions live in memory and vanish with the process.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/v2/pstest"
)

func main() {
	port := flag.Int("port", 0, "port on 127.0.0.1 (0 = any free port)")
	flag.Parse()
	srv := pstest.NewServerWithPort(*port)
	defer srv.Close()
	fmt.Printf("pstest listening on %s\n", srv.Addr)
	os.Stdout.Sync()
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	<-ch
}
