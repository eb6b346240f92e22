// Package netproxy is a TCP proxy for tests that inject network faults
// between a client (a cdc process) and a server (PostgreSQL, a Kafka
// broker, Elasticsearch): connection resets, frozen connections,
// black holes and refused connections.
//
// A [Proxy] listens on 127.0.0.1 and an ephemeral port and forwards every
// connection it accepts to one target address, byte for byte in both
// directions, including half-closes. Tests point the client at
// [Proxy.Addr] instead of the server and then break the path on demand:
//
//   - [Proxy.Reset] closes every current connection on both sides with a
//     TCP RST, as a dead peer, a restarted load balancer or a firewall
//     that forgot the flow would. New connections work.
//   - [Proxy.Freeze] makes every current connection stop carrying bytes in
//     both directions, FINs included, while both sockets stay open: a hung
//     load balancer, a partition without resets, a frozen VM. Neither end
//     sees an error or EOF; once the kernel buffers fill, writers block.
//     Connections accepted after Freeze work normally. [Proxy.Thaw]
//     releases the connections Freeze held: the bytes held at the proxy
//     then flow on, in order.
//   - [Proxy.Blackhole] makes the connections accepted while it is on
//     carry nothing: the proxy accepts them, never dials the target and
//     never reads from them. They stay dead until [Proxy.Reset] or
//     [Proxy.Close], also after Blackhole(false), which only affects
//     connections accepted later.
//   - [Proxy.Refuse] closes the listening socket, so that connection
//     attempts fail with "connection refused", and opens it again on the
//     same address when turned off. It leaves current connections alone
//     (combine it with Reset for a server that went away).
//
// [Proxy.Stats] counts accepted connections and the bytes carried each
// way. A connection whose target cannot be dialled is accepted and then
// closed, as a load balancer with no healthy backend does.
//
// # Concurrency and lifetime
//
// Every method is safe for concurrent use. The proxy runs one goroutine for
// accepting and two per connection; [Proxy.Close] closes the listener and
// every connection and waits until all of them have returned. The proxy
// never sleeps: its goroutines block only in I/O or on Freeze's gates.
package netproxy
