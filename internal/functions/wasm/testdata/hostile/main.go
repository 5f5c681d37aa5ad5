// Command hostile is a function module for the sandbox tests: what it does
// depends on the payload.
package main

import (
	"errors"
	"os"
	"strings"
	"unsafe"

	"github.com/messagebus/messagebus/pkg/function"
)

//go:wasmimport mb emit
func rawEmit(ptr unsafe.Pointer, n int32) int32

//go:wasmimport mb state_incr
func rawIncr(kptr unsafe.Pointer, klen int32, delta int64, out unsafe.Pointer) int32

var hoard [][]byte

func init() {
	function.Handle(func(ctx function.Context, in function.Message) error {
		switch p := string(in.Payload); {
		case p == "loop":
			for {
			}
		case p == "alloc":
			for {
				hoard = append(hoard, make([]byte, 1<<20))
			}
		case p == "noop":
			return nil
		case p == "ack":
			return function.Ack(ctx)
		case p == "nack":
			return function.Nack(ctx)
		case p == "fail":
			return errors.New("bad input")
		case p == "panic":
			panic("boom")
		case p == "exit":
			os.Exit(3)
		case p == "badptr":
			rawEmit(unsafe.Pointer(uintptr(0xfffffff0)), 64)
		case p == "badincr":
			k := "k"
			rawIncr(unsafe.Pointer(unsafe.StringData(k)), 1, 1, unsafe.Pointer(uintptr(0xfffffffc)))
		case p == "hugelen":
			rawEmit(nil, 0x7fffffff)
		case p == "count":
			n, err := ctx.State().Incr("count", 1)
			if err != nil {
				return err
			}
			v, _, err := ctx.State().Get("count")
			if err != nil {
				return err
			}
			if len(v) != 8 {
				return errors.New("counter is not 8 bytes")
			}
			return ctx.Publish("", function.Message{Payload: []byte{byte(n)}})
		case p == "config":
			ctx.Log().Info("reading config", "n", len(ctx.UserConfig()))
			s, _ := ctx.UserConfig()["greeting"].(string)
			return ctx.Publish("", function.Message{Payload: []byte(s)})
		case strings.HasPrefix(p, "fanout"):
			for i := range 3 {
				if err := ctx.Publish("t"+string(rune('0'+i)), function.Message{Key: in.Key, Payload: in.Payload}); err != nil {
					return err
				}
			}
		default:
			return ctx.Publish("", function.Message{Key: in.Key, Properties: in.Properties, Payload: in.Payload})
		}
		return nil
	})
}

func main() {}
