package main

import (
	"context"
	"errors"

	"github.com/mopeclip/mopeclip/train"
)

// isInterrupted reports whether err comes from a run stopped by SIGINT or
// SIGTERM (exit status 130).
func isInterrupted(err error) bool {
	return errors.Is(err, train.ErrInterrupted) || errors.Is(err, context.Canceled)
}
