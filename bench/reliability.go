package main

import "context"

func runReliability(ctx context.Context, args []string) error { return nil }
