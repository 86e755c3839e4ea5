package providers

import (
	"context"
	"errors"
	"fmt"
	"iter"
)

// ErrUnknownModel: a client asked for a model id the catalog does not have.
var ErrUnknownModel = errors.New("unknown model")

// Entry is one configured model: what clients see (ID, Name) and how to reach it.
type Entry struct {
	ID           string
	Name         string
	Provider     Provider
	Model        string // the vendor's model name
	SystemPrompt string
	Fallback     []string // ids of entries tried in order before the first token
}

// ModelInfo is what clients are shown in hello.
type ModelInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Catalog maps model ids to configured providers. It is immutable after
// NewCatalog and safe for concurrent use.
type Catalog struct {
	entries   map[string]*Entry
	infos     []ModelInfo
	defaultID string
}

// NewCatalog checks that ids are unique, the default exists, and every
// fallback names a configured model.
func NewCatalog(entries []Entry, defaultID string) (*Catalog, error) {
	c := &Catalog{entries: make(map[string]*Entry, len(entries)), defaultID: defaultID}
	for i := range entries {
		e := &entries[i]
		if _, dup := c.entries[e.ID]; dup {
			return nil, fmt.Errorf("model %q configured twice", e.ID)
		}
		c.entries[e.ID] = e
		c.infos = append(c.infos, ModelInfo{ID: e.ID, Name: e.Name})
	}
	if _, ok := c.entries[defaultID]; !ok {
		return nil, fmt.Errorf("default model %q is not configured", defaultID)
	}
	for _, e := range c.entries {
		for _, f := range e.Fallback {
			if _, ok := c.entries[f]; !ok {
				return nil, fmt.Errorf("model %q: fallback %q is not configured", e.ID, f)
			}
		}
	}
	return c, nil
}

// Models lists the configured models in configuration order.
func (c *Catalog) Models() []ModelInfo { return c.infos }

// Default is the id used when neither the send nor the session names a model.
func (c *Catalog) Default() string { return c.defaultID }

// Has reports whether id is a configured model.
func (c *Catalog) Has(id string) bool { _, ok := c.entries[id]; return ok }

// Stream generates a reply with model id for the conversation msgs.
func (c *Catalog) Stream(ctx context.Context, id string, msgs []Message) iter.Seq2[Chunk, error] {
	e, ok := c.entries[id]
	if !ok {
		return func(yield func(Chunk, error) bool) { yield(Chunk{}, fmt.Errorf("%w: %q", ErrUnknownModel, id)) }
	}
	return e.Provider.Stream(ctx, Request{Model: e.Model, System: e.SystemPrompt, Messages: msgs})
}
