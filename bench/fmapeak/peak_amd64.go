package main

// The register-only loops, in peak_amd64.s.

func fmaZ(n int)
func fmaY(n int)
func dpbusdZ(n int)
func dpbf16Z(n int)
