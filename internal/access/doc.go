// Package access decides who a request is, below both faces of the
// service (the JSON API and the console): API-key verification and viewer
// tokens. A viewer token is short-lived, signed with a server secret
// (HMAC-SHA256), scoped to one tenant and revocable; the console exchanges
// it once for a session cookie.
package access
