// coord.go -- the Go peer of bench/coord_bench.c: channels and sync.Mutex.
//
// Usage: coord METRIC N, METRIC one of
//
//	queue_handoff    two goroutines ping-pong an int through two unbuffered
//	                 channels, N round trips; one handoff is one of the two
//	                 legs of a round trip (the issue's "unbuffered-channel
//	                 ping-pong per handoff")
//	queue_item       one goroutine sends N ints into a channel of capacity
//	                 1024, the other receives them
//	lock_uncontended N Lock/Unlock pairs of a sync.Mutex nobody else wants
//	lock_handoff     two goroutines, each N/2 times: Lock, runtime.Gosched
//	                 (the other goroutine runs and blocks on the Mutex),
//	                 Unlock; the figure is per Lock
//	channel          as queue_item; bench/coord_bench.sh runs it with
//	                 GOMAXPROCS=2 on two CPUs, the other metrics with
//	                 GOMAXPROCS=1 on one
//	remote_call      one goroutine sends N funcs, one at a time, over an
//	                 unbuffered channel to a second goroutine that runs them;
//	                 each func answers on a reply channel made for its call,
//	                 which the first waits on (corio_loop_ref_call's
//	                 peer); run with GOMAXPROCS=2 on two CPUs
//
// Prints one line, "METRIC WALL_NS CPU_NS": wall-clock and process CPU time
// (user + system, every thread) per operation of a timed pass that follows
// an untimed warm-up pass of N/10.  bench/coord_bench.sh takes the medians.
// Standard library only, so it builds offline.
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func queueHandoff(n int) int {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v
		}
		close(pong)
	}()
	for i := 0; i < n; i++ {
		ping <- i
		<-pong
	}
	close(ping)
	<-pong
	return 2 * n
}

func queueItem(n int) int {
	ch := make(chan int, 1024)
	go func() {
		for i := 0; i < n; i++ {
			ch <- i
		}
		close(ch)
	}()
	sum := 0
	for v := range ch {
		sum += v
	}
	if sum != n*(n-1)/2 {
		fmt.Fprintln(os.Stderr, "coord: wrong sum")
		os.Exit(1)
	}
	return n
}

var counter int

func lockUncontended(n int) int {
	var mu sync.Mutex
	for i := 0; i < n; i++ {
		mu.Lock()
		counter++
		mu.Unlock()
	}
	return n
}

func lockHandoff(n int) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/2; i++ {
				mu.Lock()
				runtime.Gosched()
				counter++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return n / 2 * 2
}

func remoteCall(n int) int {
	calls := make(chan func())
	go func() {
		for f := range calls {
			f()
		}
	}()
	for i := 0; i < n; i++ {
		reply := make(chan int, 1)
		x := i
		calls <- func() { reply <- x + 1 }
		if <-reply != i+1 {
			panic("remote_call: wrong answer")
		}
	}
	close(calls)
	return n
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: coord METRIC N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 10 {
		fmt.Fprintln(os.Stderr, "coord: N must be a number >= 10")
		os.Exit(2)
	}
	var f func(int) int
	switch os.Args[1] {
	case "queue_handoff":
		f = queueHandoff
	case "queue_item", "channel":
		f = queueItem
	case "lock_uncontended":
		f = lockUncontended
	case "lock_handoff":
		f = lockHandoff
	case "remote_call":
		f = remoteCall
	default:
		fmt.Fprintln(os.Stderr, "coord: unknown metric", os.Args[1])
		os.Exit(2)
	}
	f(n / 10)
	c0, t0 := cpuNow(), time.Now()
	ops := f(n)
	wall, cpu := time.Since(t0), cpuNow()-c0
	fmt.Printf("%s %.2f %.2f\n", os.Args[1], float64(wall.Nanoseconds())/float64(ops),
		float64(cpu.Nanoseconds())/float64(ops))
}
