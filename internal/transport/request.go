package transport

import "context"

// Request sends data on subject (under no prefix of its own: the caller
// names the whole subject) and returns the answer, or ctx's error.
func (t *NATS) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	m, err := t.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		return nil, err
	}
	return m.Data, nil
}
