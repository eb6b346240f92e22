package netproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// dialTimeout bounds the dial of the target for one accepted connection.
const dialTimeout = 10 * time.Second

// acceptRetry is how long the accept loop waits after an accept error
// other than a closed listener (for example EMFILE), as net/http does.
const acceptRetry = 5 * time.Millisecond

// bufSize is the size of the buffer each direction of a connection copies
// through.
const bufSize = 32 << 10

// Proxy forwards TCP connections from its listening address to a target
// and injects faults into them. Create one with [New] and release it with
// [Proxy.Close].
type Proxy struct {
	target string
	addr   string // the listening address, kept across Refuse

	mu        sync.Mutex
	ln        net.Listener // nil while refusing or after Close
	conns     map[*conn]struct{}
	blackhole bool
	closed    bool
	wg        sync.WaitGroup // accept loops, connection handlers and pumps

	accepted, resets, toTarget, toClient atomic.Int64
}

// Stats counts what a proxy has done since it was created.
type Stats struct {
	Accepted      int64 // connections accepted (including black-holed ones)
	Active        int   // connections open now
	Resets        int64 // connections closed by Reset
	BytesToTarget int64 // bytes carried from clients to the target
	BytesToClient int64 // bytes carried from the target to clients
}

// New starts a proxy listening on 127.0.0.1 and an ephemeral port that
// forwards every connection to target (host:port). The target is dialled
// for each accepted connection, not now.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for a proxy to %s: %w", target, err)
	}
	p := &Proxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[*conn]struct{}{}}
	p.wg.Add(1)
	go p.serve(ln)
	return p, nil
}

// Addr returns the address clients connect to, "127.0.0.1:port". It does
// not change over the proxy's life, Refuse included.
func (p *Proxy) Addr() string { return p.addr }

// Target returns the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{
		Accepted:      p.accepted.Load(),
		Active:        active,
		Resets:        p.resets.Load(),
		BytesToTarget: p.toTarget.Load(),
		BytesToClient: p.toClient.Load(),
	}
}

// Reset closes every current connection, frozen and black-holed ones
// included, on both sides with a TCP RST (SO_LINGER 0), and returns how
// many it closed. Connections made afterwards work as the other modes
// allow.
func (p *Proxy) Reset() int {
	p.mu.Lock()
	victims := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		victims = append(victims, c)
		delete(p.conns, c)
	}
	p.mu.Unlock()
	for _, c := range victims {
		c.kill()
	}
	p.resets.Add(int64(len(victims)))
	return len(victims)
}

// Freeze makes every current connection stop carrying bytes in both
// directions while both of its sockets stay open, and returns how many it
// froze. Bytes (and end-of-stream) already read by the proxy are held;
// nothing more is read from either side, so their kernel buffers fill and
// their writes eventually block. Connections accepted after Freeze are not
// affected. [Proxy.Thaw] lets the frozen connections go on.
func (p *Proxy) Freeze() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.freeze()
	}
	return len(p.conns)
}

// Thaw lets every connection held by Freeze carry bytes again, starting
// with what the proxy held, and returns how many it released. Connections
// reset or closed meanwhile stay closed; black-holed ones stay dead.
func (p *Proxy) Thaw() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for c := range p.conns {
		if c.thaw() {
			n++
		}
	}
	return n
}

// Blackhole sets whether connections accepted from now on carry nothing:
// while on, the proxy accepts them but neither dials the target nor reads
// from them, so the client's connect succeeds and then nothing comes back
// (and its writes block once the buffers fill). Such connections stay dead
// after Blackhole(false), until Reset or Close.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	p.blackhole = on
	p.mu.Unlock()
}

// Refuse sets whether new connections are refused. On closes the listening
// socket (connection attempts then fail with ECONNREFUSED, and any not yet
// accepted are reset); off listens again on the same address. Current
// connections are not affected. Refuse(false) fails if another process took
// the port meanwhile, or after Close.
func (p *Proxy) Refuse(on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		if on {
			return nil
		}
		return fmt.Errorf("listen again on %s: the proxy is closed", p.addr)
	}
	if on {
		if p.ln != nil {
			err := p.ln.Close()
			p.ln = nil
			if err != nil {
				return fmt.Errorf("close the listener on %s: %w", p.addr, err)
			}
		}
		return nil
	}
	if p.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("listen again on %s: %w", p.addr, err)
	}
	p.ln = ln
	p.wg.Add(1)
	go p.serve(ln)
	return nil
}

// Close stops listening, resets every connection and waits until every
// goroutine of the proxy has returned. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	var err error
	if p.ln != nil {
		err = p.ln.Close()
		p.ln = nil
	}
	victims := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		victims = append(victims, c)
		delete(p.conns, c)
	}
	p.mu.Unlock()
	for _, c := range victims {
		c.kill()
	}
	p.wg.Wait()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close proxy on %s: %w", p.addr, err)
	}
	return nil
}

// serve accepts connections on ln until ln is closed.
func (p *Proxy) serve(ln net.Listener) {
	defer p.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient failure such as running out of descriptors.
			t := time.NewTimer(acceptRetry)
			<-t.C
			continue
		}
		p.accept(nc)
	}
}

// accept registers an accepted connection and starts forwarding it, unless
// the proxy is black-holing or closed.
func (p *Proxy) accept(nc net.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &conn{client: nc, done: make(chan struct{}), cancel: cancel}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		cancel()
		rst(nc)
		return
	}
	p.accepted.Add(1)
	p.conns[c] = struct{}{}
	if p.blackhole {
		p.mu.Unlock()
		return
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go p.handle(ctx, c)
}

// handle dials the target for c and copies both ways until both are done.
func (p *Proxy) handle(ctx context.Context, c *conn) {
	defer p.wg.Done()
	defer p.forget(c)
	d := net.Dialer{Timeout: dialTimeout}
	sc, err := d.DialContext(ctx, "tcp", p.target)
	if err != nil {
		c.kill() // no backend: the client sees its connection closed
		return
	}
	if !c.attach(sc) {
		return // reset while dialling
	}
	var pumps sync.WaitGroup
	pumps.Add(2)
	go func() { defer pumps.Done(); c.pump(c.client, sc, &p.toTarget) }()
	go func() { defer pumps.Done(); c.pump(sc, c.client, &p.toClient) }()
	pumps.Wait()
	c.close()
}

// forget removes c from the current connections.
func (p *Proxy) forget(c *conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// conn is one proxied connection.
type conn struct {
	client net.Conn
	cancel context.CancelFunc // cancels the dial of the target
	done   chan struct{}      // closed by kill
	once   sync.Once

	mu     sync.Mutex
	server net.Conn      // nil until dialled, and for black-holed connections
	gate   chan struct{} // non-nil while frozen; closed by thaw
}

// attach records the dialled target connection; it reports false (and
// closes sc) when c was killed meanwhile.
func (c *conn) attach(sc net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.done:
		rst(sc)
		return false
	default:
	}
	c.server = sc
	return true
}

// freeze holds c's traffic until thaw.
func (c *conn) freeze() {
	c.mu.Lock()
	if c.gate == nil {
		c.gate = make(chan struct{})
	}
	c.mu.Unlock()
}

// thaw releases c's traffic; it reports whether c was frozen.
func (c *conn) thaw() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gate == nil {
		return false
	}
	close(c.gate)
	c.gate = nil
	return true
}

// pass waits while c is frozen; it reports false once c is killed.
func (c *conn) pass() bool {
	for {
		c.mu.Lock()
		g := c.gate
		c.mu.Unlock()
		if g == nil {
			select {
			case <-c.done:
				return false
			default:
				return true
			}
		}
		select {
		case <-g:
		case <-c.done:
			return false
		}
	}
}

// pump copies src to dst, counting into n, through c's gate. End of stream
// is passed on as a half-close; any other failure resets both sides.
func (c *conn) pump(src, dst net.Conn, n *atomic.Int64) {
	buf := make([]byte, bufSize)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			if !c.pass() {
				return
			}
			if _, werr := dst.Write(buf[:k]); werr != nil {
				c.kill()
				return
			}
			n.Add(int64(k))
		}
		if err != nil {
			if !c.pass() {
				return
			}
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				return
			}
			c.kill()
			return
		}
	}
}

// kill closes both sides of c with a reset, once, and ends its pumps.
func (c *conn) kill() {
	c.once.Do(func() {
		c.mu.Lock()
		close(c.done)
		sc := c.server
		c.mu.Unlock()
		c.cancel()
		rst(c.client)
		if sc != nil {
			rst(sc)
		}
	})
}

// close closes both sides of c normally after both directions ended.
func (c *conn) close() {
	c.once.Do(func() {
		c.mu.Lock()
		close(c.done)
		sc := c.server
		c.mu.Unlock()
		c.cancel()
		_ = c.client.Close()
		if sc != nil {
			_ = sc.Close()
		}
	})
}

// rst closes nc so that the peer gets a TCP RST rather than a FIN.
func rst(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = nc.Close()
}
