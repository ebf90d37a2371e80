// Package jsonerr words encoding/json's decode errors for the people who sent the JSON:
// a type error names the field, as it is spelt in the JSON, and the kinds of value, not
// the Go types behind them.
package jsonerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Describe returns err, a type error reworded: `split: a string where a number belongs`
// rather than `json: cannot unmarshal string into Go struct field RouteUpdate.split of
// type int`. (encoding/json does not report map keys, so a value inside a map is named
// by the map's field.) A value of the wrong kind for the whole body names no field: the
// caller says where the body was (`body: an array where an object belongs`).
func Describe(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	prefix := ""
	if te.Field != "" {
		prefix = te.Field + ": "
	}
	if n, ok := strings.CutPrefix(te.Value, "number "); ok {
		return fmt.Errorf("%s%s is not a whole number in range", prefix, n) // 1.5 or 1e99 for an int
	}
	return fmt.Errorf("%s%s where %s belongs", prefix, article(te.Value), kind(te.Type))
}

// kind is the JSON kind of value that decodes into t.
func kind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.Pointer:
		return kind(t.Elem())
	}
	return "another kind of value"
}

// article puts a or an before encoding/json's name of the value it found.
func article(v string) string {
	switch v {
	case "array", "object":
		return "an " + v
	case "":
		return "a value"
	}
	return "a " + v
}
