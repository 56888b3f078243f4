package bfd

// AdminDown takes the session administratively down (RFC 5880 §6.8.16): it moves to
// AdminDown with diagnostic Administratively Down and tells the peer at once, so the peer
// learns of an orderly shutdown instead of timing out. The peer goes Down with diagnostic
// Neighbor Signaled Session Down (RFC 5882 §3.2 asks it not to treat that as a path failure).
// The session keeps sending AdminDown at its slow rate until Close; received packets no longer
// change its state.
func (s *Session) AdminDown() {
	var e effects
	s.mu.Lock()
	if !s.closed && s.state != StateAdminDown {
		wasUp := s.state == StateUp
		s.setState(StateAdminDown, DiagAdministrativelyDown, &e)
		if !wasUp && s.transmitting {
			// setState announces only changes into or out of Up; this one must reach the
			// peer too.
			s.transmit(&e, false)
			s.armTx()
		}
	}
	s.mu.Unlock()
	s.run(&e)
}
