// benchsvc: the service program of the benchmarks (test/bench), the same binary for core and process-compose.
//
//	benchsvc http PORT READY_AFTER_MS   listen on 127.0.0.1:PORT at once; answer 503 until READY_AFTER_MS has
//	                                    passed since start, then 200; exit 0 on SIGTERM or SIGINT
//	benchsvc flood LINES                write "@start <epoch ms>" then LINES lines of exactly 50 bytes
//	                                    ("@0000001 " and filler) to stdout, then exit 0
//
// Small and static so that 200 of them are cheap (a few MB of RSS each, a few ms to start).
package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: benchsvc http PORT READY_AFTER_MS | benchsvc flood LINES")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "http":
		serve(os.Args[2], os.Args[3:])
	case "flood":
		flood(os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func serve(port string, rest []string) {
	start := time.Now()
	readyAfter := time.Duration(0)
	if len(rest) > 0 {
		ms, err := strconv.Atoi(rest[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad READY_AFTER_MS:", rest[0])
			os.Exit(2)
		}
		readyAfter = time.Duration(ms) * time.Millisecond
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s\n", port)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		os.Exit(0)
	}()
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if time.Since(start) < readyAfter {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("starting\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	_ = http.Serve(ln, handler)
}

func flood(arg string) {
	lines, err := strconv.Atoi(arg)
	if err != nil || lines < 0 || lines > 9_999_999 {
		fmt.Fprintln(os.Stderr, "bad LINES:", arg)
		os.Exit(2)
	}
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	fmt.Fprintf(out, "@start %d\n", time.Now().UnixMilli())
	line := []byte("@0000000 the quick brown fox jumps over the lazy.\n")
	for i := 1; i <= lines; i++ {
		n := i
		for j := 7; j >= 1; j-- {
			line[j] = byte('0' + n%10)
			n /= 10
		}
		if _, err := out.Write(line); err != nil {
			os.Exit(1)
		}
	}
	if err := out.Flush(); err != nil {
		os.Exit(1)
	}
}
