package impair

import (
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestSimClockFiresInOrder(t *testing.T) {
	c := NewSimClock()
	var order []string
	var at []time.Duration
	note := func(name string) func() {
		return func() {
			order = append(order, name)
			at = append(at, c.Elapsed())
		}
	}
	c.AfterFunc(30*time.Millisecond, note("c"))
	c.AfterFunc(10*time.Millisecond, note("a1"))
	c.AfterFunc(10*time.Millisecond, note("a2")) // same instant: set later, fires later
	stopped := c.AfterFunc(20*time.Millisecond, note("stopped"))
	moved := c.AfterFunc(5*time.Millisecond, note("b"))
	moved.Reset(20 * time.Millisecond)
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop should report true once, then false")
	}
	if d, ok := c.Next(); !ok || d != 10*time.Millisecond {
		t.Fatalf("Next() = %v, %v, want 10ms", d, ok)
	}
	if d, ok := c.AdvanceToNext(); !ok || d != 10*time.Millisecond {
		t.Fatalf("AdvanceToNext() = %v, %v, want 10ms", d, ok)
	}
	if !reflect.DeepEqual(order, []string{"a1", "a2"}) {
		t.Fatalf("after the first step: %v, want both timers of that instant", order)
	}
	c.Advance(time.Second)
	if want := []string{"a1", "a2", "b", "c"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("fired %v, want %v", order, want)
	}
	if want := []time.Duration{10, 10, 20, 30}; !reflect.DeepEqual(at, scale(want, time.Millisecond)) {
		t.Fatalf("fired at %v, want %v ms", at, want)
	}
	if c.Elapsed() != 1010*time.Millisecond {
		t.Fatalf("clock at %v after Advance(1s) from 10ms, want 1.01s", c.Elapsed())
	}
	if _, ok := c.AdvanceToNext(); ok {
		t.Fatal("AdvanceToNext with no timer set should report false")
	}
}

func scale(ds []time.Duration, unit time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d * unit
	}
	return out
}

// A callback may set further timers, including ones due at once (which run
// on their own goroutine and are waited for) and ones due within the same
// Advance.
func TestSimClockCallbacksSetTimers(t *testing.T) {
	c := NewSimClock()
	var mu sync.Mutex
	var order []string
	add := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	c.AfterFunc(time.Millisecond, func() {
		add("first")
		c.AfterFunc(0, func() { add("at once") })
		c.AfterFunc(time.Millisecond, func() { add("later") })
	})
	c.AfterFunc(3*time.Millisecond, func() { add("last") })
	c.Advance(10 * time.Millisecond)
	if want := []string{"first", "at once", "later", "last"}; !reflect.DeepEqual(order, want) {
		t.Fatalf("fired %v, want %v", order, want)
	}
}
