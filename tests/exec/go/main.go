// A Go program for `unikit run --exec`, built by the exec boot tests
// (tests/exec.rs) with CGO_ENABLED=0: goroutines, time.Sleep, a recovered
// nil-pointer panic, then what its arguments ask for:
//   - serve: a net/http server on :8080 that stops after a request to /exit;
//   - preempt: on one P, a goroutine spinning without a call must be
//     preempted (the runtime sends it SIGURG) for main to wake up;
//   - hosts: net.LookupHost of a name in the rootfs's /etc/hosts.
//
// Prints `go: ok` and exits 0.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// spin loops without a function call: it holds its P until the runtime
// preempts it asynchronously.
func spin(stop *int32, n *int64) {
	for atomic.LoadInt32(stop) == 0 {
		*n++
	}
}

type T struct{ x int }

func nilDeref() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recovered: %v", r)
		}
	}()
	var p *T
	return fmt.Errorf("no panic %d", p.x)
}

func main() {
	var wg sync.WaitGroup
	sum := make([]int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 100000; j++ {
				sum[i] += j % 7
			}
		}(i)
	}
	wg.Wait()
	fmt.Println("go: goroutines", sum[0]*8)
	t := time.Now()
	time.Sleep(20 * time.Millisecond)
	fmt.Println("go: slept", time.Since(t) >= 20*time.Millisecond)
	fmt.Println("go:", nilDeref())
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	if mode == "preempt" {
		runtime.GOMAXPROCS(1)
		var stop int32
		var n int64
		go spin(&stop, &n)
		time.Sleep(50 * time.Millisecond)
		atomic.StoreInt32(&stop, 1)
		fmt.Println("go: preempted a spinning goroutine")
	}
	if mode == "hosts" {
		addrs, err := net.LookupHost("exec-test-host")
		fmt.Println("go: hosts", addrs, err)
	}
	if mode == "serve" {
		srv := &http.Server{Addr: ":8080"}
		done := make(chan struct{})
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello from go %s\n", r.URL.Path)
		})
		http.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "bye from go\n")
			// Shutdown waits for this answer to be written.
			go func() { srv.Shutdown(context.Background()); close(done) }()
		})
		fmt.Println("go: serving")
		if err := srv.ListenAndServe(); err != http.ErrServerClosed {
			fmt.Println("go: serve error", err)
			os.Exit(2)
		}
		<-done
		fmt.Println("go: served")
	}
	fmt.Println("go: ok")
}
