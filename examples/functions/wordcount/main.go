// Command wordcount counts the words of every message in the function's
// durable state (key "word/<word>") and publishes each word's new count
// (key: the word, payload: the count in decimal).
package main

import (
	"bytes"
	"strconv"
	"unicode"

	"github.com/messagebus/messagebus/pkg/function"
)

func init() {
	function.Handle(func(ctx function.Context, in function.Message) error {
		for _, w := range bytes.FieldsFunc(in.Payload, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			word := string(bytes.ToLower(w))
			n, err := ctx.State().Incr("word/"+word, 1)
			if err != nil {
				return err
			}
			if err := ctx.Publish("", function.Message{Key: word, Payload: strconv.AppendInt(nil, n, 10)}); err != nil {
				return err
			}
		}
		return nil
	})
}

func main() {}
