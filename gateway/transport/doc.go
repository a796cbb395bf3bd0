// Package transport secures and hands over the gateway's listener: a TLS
// configuration whose certificate is reloaded without dropping connections,
// optional client-certificate verification, a development CA, the rule that
// plain HTTP is only for loopback, a LimitListener that caps connections
// per client and in total (idle connections give way to new ones; a few
// slots stay for health checks), and a Switch that passes one listening
// socket from a start-up responder to the real server.
//
// It holds the server's private key only inside tls.Certificate values and
// never logs or returns it. Safe for concurrent use.
package transport
