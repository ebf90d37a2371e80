package push_test

import (
	"testing"

	"github.com/mgw-project/mgw/push"
	"github.com/mgw-project/mgw/push/pushtest"
)

func TestMemoryStore(t *testing.T) {
	pushtest.Run(t, func(t *testing.T, lim push.Limits) pushtest.Store { return push.NewMemory(lim) })
}
