package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// EnvPrefix starts every environment override: CHATBOX_<SECTION>_<KEY>.
const EnvPrefix = "CHATBOX_"

// Load reads the TOML file at path ("" means no file: pure defaults, which is
// dev mode), applies CHATBOX_* overrides read through getenv (nil means no
// environment), fills in defaults and validates. See the package doc for the
// order. It does not touch secrets; call [Config.PrepareSecrets] next.
func Load(path string, getenv func(string) string) (*Config, error) {
	c := scalarDefaults()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := decode(c, path, b); err != nil {
			return nil, err
		}
	}
	if getenv != nil {
		if err := applyEnv(c, getenv); err != nil {
			return nil, err
		}
	}
	c.applyDerivedDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decode reads the TOML document b, from path, into c, strictly. Errors
// read "config PATH:LINE: problem", one per unknown key, and never quote the
// document's text, which may hold secrets.
func decode(c *Config, path string, b []byte) error {
	err := toml.NewDecoder(bytes.NewReader(b)).DisallowUnknownFields().Decode(c)
	if err == nil {
		return nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		errs := make([]error, 0, len(strict.Errors))
		for _, e := range strict.Errors {
			line, _ := e.Position()
			what := "key"
			if strings.HasPrefix(e.Error(), "toml: missing table") {
				what = "table"
			}
			errs = append(errs, fmt.Errorf("config %s:%d: unknown %s %q", path, line, what, strings.Join(e.Key(), ".")))
		}
		return errors.Join(errs...)
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ := de.Position()
		msg := humanize(strings.TrimPrefix(de.Error(), "toml: "))
		if k := de.Key(); len(k) > 0 {
			return fmt.Errorf("config %s:%d: %s: %s", path, line, strings.Join(k, "."), msg)
		}
		return fmt.Errorf("config %s:%d: %s", path, line, msg)
	}
	if key := misplacedDuration(b); key != "" {
		// go-toml reports this one without the key.
		return fmt.Errorf("config %s: %s: must be a duration string such as \"30s\"", path, key)
	}
	return fmt.Errorf("config %s: %w", path, err)
}

// misplacedDuration returns the first duration key that the document b sets
// to something other than a string, or "".
func misplacedDuration(b []byte) string {
	var doc map[string]any
	if toml.Unmarshal(b, &doc) != nil {
		return ""
	}
	for _, v := range envVars(scalarDefaults()) {
		if v.field.Type() != durationType {
			continue
		}
		section, key, _ := strings.Cut(v.key, ".")
		table, _ := doc[section].(map[string]any)
		if val, ok := table[key]; ok {
			if _, isString := val.(string); !isString {
				return v.key
			}
		}
	}
	return ""
}

// typeMismatch matches go-toml's message for a value of the wrong type.
var typeMismatch = regexp.MustCompile(`^cannot decode TOML (.+) into .*of type (\S+)$`)

// humanize rewrites go-toml's type-mismatch message, which names Go types,
// into one that names TOML kinds.
func humanize(msg string) string {
	m := typeMismatch.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	want := map[string]string{
		"string":          "a string",
		"int":             "an integer",
		"int64":           "an integer",
		"bool":            "true or false",
		"[]string":        "a list of strings",
		"config.Duration": `a duration string such as "30s"`,
	}[m[2]]
	if want == "" {
		return msg
	}
	return fmt.Sprintf("must be %s, got a TOML %s", want, m[1])
}

var durationType = reflect.TypeFor[Duration]()

// envVar is one overridable key: its environment name and the field it sets.
type envVar struct {
	name  string // CHATBOX_SERVER_LISTEN
	key   string // server.listen
	field reflect.Value
}

// envVars lists every overridable key of c, found through the toml tags so
// that a new field is overridable without anyone remembering to add it.
func envVars(c *Config) []envVar {
	var vars []envVar
	root := reflect.ValueOf(c).Elem()
	for i := range root.NumField() {
		section := root.Type().Field(i).Tag.Get("toml")
		if section == "-" {
			continue // Tuning: not configuration keys
		}
		sv := root.Field(i)
		for j := range sv.NumField() {
			f := sv.Type().Field(j)
			key := f.Tag.Get("toml")
			if key == "" || key == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct {
				continue // arrays of tables such as [[llm.models]]
			}
			vars = append(vars, envVar{
				name:  EnvPrefix + strings.ToUpper(section+"_"+key),
				key:   section + "." + key,
				field: sv.Field(j),
			})
		}
	}
	return vars
}

// applyEnv sets every key whose CHATBOX_* variable is non-empty.
func applyEnv(c *Config, getenv func(string) string) error {
	var errs []error
	for _, v := range envVars(c) {
		s := getenv(v.name)
		if s == "" {
			continue
		}
		if err := setField(v.field, s); err != nil {
			errs = append(errs, fmt.Errorf("environment %s (%s): %w", v.name, v.key, err))
		}
	}
	return errors.Join(errs...)
}

// setField parses s into f according to f's type. Messages quote s only
// for numbers and durations: strings may be secrets and never fail.
func setField(f reflect.Value, s string) error {
	switch {
	case f.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("not a duration such as \"30s\": %q", s)
		}
		f.Set(reflect.ValueOf(Duration{d}))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Int, f.Kind() == reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, f.Type().Bits())
		if err != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		f.SetInt(n)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("not true or false: %q", s)
		}
		f.SetBool(b)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		f.Set(reflect.ValueOf(splitList(s)))
	default:
		// Reached only if a field of a new type is added to Config; the
		// tests set every key, so this fails there first.
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items, so "a, b," is [a b].
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
