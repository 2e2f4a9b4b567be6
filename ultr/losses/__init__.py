"""One pure objective per method over [batch, list] arrays plus a mask (rax-style signatures)."""
