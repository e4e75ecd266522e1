package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/vigilhq/vigil/internal/audit"
	"github.com/vigilhq/vigil/internal/fsutil"
)

// checkName refuses names that could leave the store's root.
func checkName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || slices.Contains(strings.Split(name, "/"), "..") {
		return fmt.Errorf("archive: invalid object name %q", name)
	}
	return nil
}

// Dir is a Store in a local directory (a mounted volume, say).
type Dir struct{ Root string }

// Put writes the object durably (temporary file, fsync, rename).
func (d Dir) Put(_ context.Context, name string, r io.Reader, _ int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	p := filepath.Join(d.Root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	return fsutil.Replace(p, b, 0o640)
}

// Get opens an object.
func (d Dir) Get(_ context.Context, name string) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.Root, filepath.FromSlash(name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, audit.Errorf(audit.ENOTFOUND, "archive object %s not found", name)
	}
	return f, err
}

// List walks the directory.
func (d Dir) List(_ context.Context, prefix string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(d.Root, p)
		if err != nil {
			return err
		}
		if rel = filepath.ToSlash(rel); strings.HasPrefix(rel, prefix) {
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

// S3Options configure an S3-compatible bucket.
type S3Options struct {
	// Endpoint is host[:port] (s3.amazonaws.com, a MinIO server…).
	Endpoint string
	Bucket   string
	// Prefix is prepended to every name ("vigil/", say).
	Prefix    string
	Region    string
	AccessKey string
	SecretKey string
	// Insecure uses http:// (a local test server); https otherwise.
	Insecure bool
}

// S3 is a Store in an S3-compatible bucket.
type S3 struct {
	c      *minio.Client
	bucket string
	prefix string
}

// NewS3 connects to a bucket (it must exist).
func NewS3(o S3Options) (*S3, error) {
	c, err := minio.New(o.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure: !o.Insecure, Region: o.Region})
	if err != nil {
		return nil, fmt.Errorf("archive: S3 endpoint %s: %w", o.Endpoint, err)
	}
	return &S3{c: c, bucket: o.Bucket, prefix: o.Prefix}, nil
}

// Put uploads an object.
func (s *S3) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := checkName(name); err != nil {
		return err
	}
	ct := "application/gzip"
	if strings.HasSuffix(name, ".json") {
		ct = "application/json"
	}
	_, err := s.c.PutObject(ctx, s.bucket, s.prefix+name, r, size, minio.PutObjectOptions{ContentType: ct})
	return err
}

// Get downloads an object.
func (s *S3) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	o, err := s.c.GetObject(ctx, s.bucket, s.prefix+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	if _, err := o.Stat(); err != nil {
		o.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, audit.Errorf(audit.ENOTFOUND, "archive object %s not found", name)
		}
		return nil, err
	}
	return o, nil
}

// List lists the objects under prefix.
func (s *S3) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for o := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, o.Err
		}
		out = append(out, strings.TrimPrefix(o.Key, s.prefix))
	}
	slices.Sort(out)
	return out, nil
}
