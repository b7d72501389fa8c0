// Command faultproxy is the flaky link of convoy's benchmark (bench/bench.sh
// s7): a TCP forwarder on loopback that resets every client connection with
// a real TCP RST after a random 4 to 16 MiB of server-to-client bytes.
//
// The limits come from one seeded generator in accept order, so every tool
// run against a fresh proxy with the same -seed meets the same sequence of
// limits. With -reset=false it only forwards, which gives the same path
// without faults to compare against. It prints one line to stdout once it
// listens.
//
//	faultproxy -listen 127.0.0.1:18083 -to 127.0.0.1:18081 -seed 1
//
// It accepts loopback addresses only, stops by itself after -lifetime, and
// on SIGTERM or SIGINT prints one line to stderr: connections and resets.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const mib = 1 << 20

func main() {
	listen := flag.String("listen", "127.0.0.1:18083", "loopback address to listen on")
	to := flag.String("to", "127.0.0.1:18081", "loopback address to forward to")
	seed := flag.Int64("seed", 1, "seed of the per-connection reset limits")
	minB := flag.Int64("min", 4*mib, "smallest server-to-client byte count before a reset")
	maxB := flag.Int64("max", 16*mib, "largest server-to-client byte count before a reset")
	reset := flag.Bool("reset", true, "reset connections; false only forwards")
	lifetime := flag.Duration("lifetime", 10*time.Minute, "exit after this long whatever happens")
	flag.Parse()

	for _, a := range []string{*listen, *to} {
		if err := loopbackOnly(a); err != nil {
			fatal(err)
		}
	}
	if *minB <= 0 || *maxB < *minB {
		fatal(fmt.Errorf("need 0 < -min <= -max, have %d and %d", *minB, *maxB))
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fatal(err)
	}
	fmt.Printf("faultproxy: listening on %s, forwarding to %s, reset=%v seed=%d\n", ln.Addr(), *to, *reset, *seed)
	p := &proxy{
		to:    *to,
		reset: *reset,
		min:   *minB,
		max:   *maxB,
		rng:   rand.New(rand.NewSource(*seed)),
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		select {
		case <-sig:
		case <-time.After(*lifetime):
			fmt.Fprintln(os.Stderr, "faultproxy: lifetime over")
		}
		ln.Close()
	}()

	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				break
			}
			fmt.Fprintln(os.Stderr, "faultproxy:", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.wg.Add(1)
		go p.serve(c.(*net.TCPConn), p.nextLimit())
	}
	p.closeAll()
	p.wg.Wait()
	fmt.Fprintf(os.Stderr, "faultproxy: %d connections, %d resets\n", p.conns.Load(), p.resets.Load())
}

type proxy struct {
	to       string
	reset    bool
	min, max int64

	mu   sync.Mutex
	rng  *rand.Rand
	open map[*net.TCPConn]struct{}

	wg            sync.WaitGroup
	conns, resets atomic.Int64
}

// nextLimit draws the next connection's byte limit, or -1 for none.
func (p *proxy) nextLimit() int64 {
	p.conns.Add(1)
	if !p.reset {
		return -1
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.min + p.rng.Int63n(p.max-p.min+1)
}

func (p *proxy) track(c *net.TCPConn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == nil {
		p.open = map[*net.TCPConn]struct{}{}
	}
	if on {
		p.open[c] = struct{}{}
	} else {
		delete(p.open, c)
	}
}

func (p *proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.open {
		c.Close()
	}
}

// serve forwards one client connection; limit < 0 means never reset.
func (p *proxy) serve(client *net.TCPConn, limit int64) {
	defer p.wg.Done()
	p.track(client, true)
	defer p.track(client, false)
	defer client.Close()

	d := net.Dialer{Timeout: 5 * time.Second}
	uc, err := d.Dial("tcp", p.to)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultproxy:", err)
		return
	}
	up := uc.(*net.TCPConn)
	p.track(up, true)
	defer p.track(up, false)
	defer up.Close()

	// Requests: client to server, unchanged. Either side ending ends both.
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, client)
		up.Close()
		client.Close()
	}()

	// Answers: server to client, cut with a RST once limit bytes have passed.
	buf := make([]byte, 64<<10)
	var sent int64
	for {
		n, rerr := up.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			cut := limit >= 0 && sent+int64(n) >= limit
			if cut {
				chunk = chunk[:limit-sent]
			}
			if _, werr := client.Write(chunk); werr != nil {
				break
			}
			sent += int64(len(chunk))
			if cut {
				p.resets.Add(1)
				client.SetLinger(0) // Close now sends RST, not FIN
				client.Close()
				up.Close()
				break
			}
		}
		if rerr != nil {
			break
		}
	}
	client.Close()
	up.Close()
	<-done
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address", addr)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "faultproxy:", err)
	os.Exit(1)
}
