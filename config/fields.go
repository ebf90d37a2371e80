package config

import (
	"reflect"
	"strings"
)

// knownFields lists the YAML keys of the config struct type named typeName (e.g. "Listener"),
// found by walking Config's field types, or "" when there is no such type.
func knownFields(typeName string) string {
	var found reflect.Type
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || found != nil {
			return
		}
		seen[t] = true
		if t.Name() == typeName {
			found = t
			return
		}
		for i := range t.NumField() {
			walk(t.Field(i).Type)
		}
	}
	walk(reflect.TypeFor[Config]())
	if found == nil {
		return ""
	}
	names := make([]string, 0, found.NumField())
	for i := range found.NumField() {
		tag, _, _ := strings.Cut(found.Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			names = append(names, tag)
		}
	}
	return strings.Join(names, ", ")
}
