package reliability

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// proxy is a TCP proxy between the service and its backend that adds the
// network's faults on demand: latency on every chunk each way, a
// blackhole (nothing passes and new connections hang, as in a partition;
// what was held back is delivered once it ends, as TCP's retransmissions
// would) and resets of every connection.
type proxy struct {
	ln     net.Listener
	target string

	latency  atomic.Int64 // nanoseconds
	mu       sync.Mutex
	holes    chan struct{} // closed when the blackhole ends; nil when none
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	closed   bool
	resets   atomic.Int64
	accepted atomic.Int64
}

// startProxy listens on a loopback port and forwards to target.
func startProxy(target string) (*proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

// addr is the proxy's listening address.
func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) setLatency(d time.Duration) { p.latency.Store(int64(d)) }

// blackhole starts (on) or ends a blackhole.
func (p *proxy) blackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case on && p.holes == nil:
		p.holes = make(chan struct{})
	case !on && p.holes != nil:
		close(p.holes)
		p.holes = nil
	}
}

// pass waits while a blackhole lasts.
func (p *proxy) pass() {
	p.mu.Lock()
	h := p.holes
	p.mu.Unlock()
	if h != nil {
		<-h
	}
}

// reset closes every connection with an RST.
func (p *proxy) reset() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
		n++
	}
	p.resets.Add(int64(n))
	return n
}

// close stops the proxy and closes every connection.
func (p *proxy) close() {
	p.blackhole(false)
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.reset()
	p.wg.Wait()
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *proxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		if !p.track(client) {
			return
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

// serve connects client to the target, once no blackhole holds it back.
func (p *proxy) serve(client net.Conn) {
	defer p.untrack(client)
	p.pass()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	server, err := (&net.Dialer{}).DialContext(ctx, "tcp", p.target)
	cancel()
	if err != nil || !p.track(server) {
		return
	}
	defer p.untrack(server)
	var wg sync.WaitGroup
	wg.Go(func() { p.pipe(server, client) })
	p.pipe(client, server)
	wg.Wait()
}

// chunk is data read from one side, due on the other at due.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies from src to dst through the faults, and closes both when
// either side ends.
func (p *proxy) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- chunk{data: buf[:n], due: time.Now().Add(time.Duration(p.latency.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.due))
		p.pass()
		if _, err := dst.Write(c.data); err != nil {
			_ = src.Close()
			for range q { // let the reader end
			}
			return
		}
	}
}

var errNoPort = errors.New("no host:port to proxy")
