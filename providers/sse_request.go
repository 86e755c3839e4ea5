package providers

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Endpoint is the URL of a vendor's streaming route: path joined to base, or
// to def when base is empty (a vendor's own endpoint, which needs an API
// key; an OpenAI-compatible local server may need none).
func Endpoint(vendor, base, def, apiKey, path string) (string, error) {
	if base == "" {
		base = def
		if apiKey == "" {
			return "", errors.New(vendor + ": an API key is required for " + def)
		}
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%s: base URL %q is not an http(s) URL", vendor, base)
	}
	return strings.TrimSuffix(base, "/") + path, nil
}

// PostStream POSTs a JSON body asking for an event stream, under the
// watchdog's context, and returns the response of a 2xx answer for the
// caller to read and close. Any other answer, or a transport failure, is a
// classified *Error; the vendor's message is read from the body with
// message, and secret is redacted from it.
func PostStream(wd *Watchdog, client *http.Client, endpoint string, body []byte, header http.Header, model, secret string, message func([]byte) string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(wd.Context(), http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Kind: KindBadRequest, Model: model, Err: err}
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return nil, wd.Err(model, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, ResponseError(model, resp, secret, message)
	}
	return resp, nil
}
