package broker

import "time"

// Lockout, and why it is keyed as it is.
//
// A failed login counts against the pair (source, device name presented) and against
// the source alone; the client id counts for nothing (anyone may send any client id).
//
//   - A pair with LockoutFailures failures within LockoutWindow is locked for
//     LockoutWindow: its logins are refused without a password check. A stranger who
//     sends the right device name with wrong passwords locks only itself out: the
//     device, from its own address, never shares the pair (it used to be locked out
//     by its client id alone, from any address).
//   - A source with LockoutFailures failures within LockoutWindow (whatever names it
//     tried) is suspect: its password checks wait for one another, one at a time, so
//     a source guessing names cannot take more than one of the checks the hub runs at
//     once, and a device from elsewhere always finds one free. A suspect source is
//     slowed, never refused: a device behind the same address (the hub's loopback,
//     shared by every bridge on the hub) still gets in with its right password.

// failures is the recent failed logins of one key.
type failures struct {
	n     int
	first time.Time
	until time.Time // locked until (pairs only)
}

// maxFailureKeys bounds the failure table; beyond it, entries whose window and lock
// have passed are swept, and if that is not enough the table is cleared.
const maxFailureKeys = 10000

func pairKey(source, user string) string { return "p\x00" + source + "\x00" + user }
func sourceKey(source string) string     { return "s\x00" + source }

// recent returns key's failures within the window at now, or nil (under lockMu).
func (b *Broker) recent(key string, now time.Time) *failures {
	f := b.fails[key]
	if f == nil || now.Sub(f.first) > b.opts.LockoutWindow && !now.Before(f.until) {
		return nil
	}
	return f
}

// lockedOut reports whether the pair (source, user) is locked at now.
func (b *Broker) lockedOut(source, user string, now time.Time) bool {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	f := b.fails[pairKey(source, user)]
	return f != nil && now.Before(f.until)
}

// suspect reports whether source has failed LockoutFailures times within the window.
func (b *Broker) suspect(source string, now time.Time) bool {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	f := b.recent(sourceKey(source), now)
	return f != nil && f.n >= b.opts.LockoutFailures
}

// failed counts a failed login from source presenting user ("" when none).
func (b *Broker) failed(source, user string, now time.Time) {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	b.count(sourceKey(source), now, false)
	if user != "" {
		b.count(pairKey(source, user), now, true)
	}
}

// succeeded forgets the failures of the pair (source, user).
func (b *Broker) succeeded(source, user string) {
	b.lockMu.Lock()
	defer b.lockMu.Unlock()
	delete(b.fails, pairKey(source, user))
}

// count adds a failure to key (under lockMu); a pair reaching LockoutFailures is locked.
func (b *Broker) count(key string, now time.Time, lock bool) {
	f := b.fails[key]
	if f == nil || now.Sub(f.first) > b.opts.LockoutWindow {
		if f == nil && len(b.fails) >= maxFailureKeys {
			b.sweep(now)
		}
		if f == nil || !now.Before(f.until) {
			f = &failures{first: now}
		} else {
			f.n, f.first = 0, now // still locked: a new window, the lock kept
		}
		b.fails[key] = f
	}
	f.n++
	if lock && f.n >= b.opts.LockoutFailures && !now.Before(f.until) {
		f.until = now.Add(b.opts.LockoutWindow)
		b.log.Warn("locked out after failed logins", "who", key[2:], "failures", f.n, "for", b.opts.LockoutWindow)
	}
}

// sweep forgets failures whose window and lock have passed; if every entry is still
// live, it forgets them all rather than grow without end (under lockMu).
func (b *Broker) sweep(now time.Time) {
	for k, f := range b.fails {
		if now.Sub(f.first) > b.opts.LockoutWindow && !now.Before(f.until) {
			delete(b.fails, k)
		}
	}
	if len(b.fails) >= maxFailureKeys {
		clear(b.fails)
	}
}

// checkTurn waits for a suspect source's turn at the password check (one at a time
// across all suspect sources), or for gone to close; it returns a func that ends the
// turn, or false if gone closed first. Sources in good standing go straight through.
func (b *Broker) checkTurn(gone <-chan struct{}, suspect bool) (func(), bool) {
	if !suspect {
		return func() {}, true
	}
	select {
	case b.suspectChecks <- struct{}{}:
		return func() { <-b.suspectChecks }, true
	case <-gone:
		return nil, false
	}
}
