// Package deploy holds the deployment material: the image's default
// configuration (docker/) and the Kubernetes manifests (kubernetes/). It has
// no code; deploy_test.go checks that the manifests, the Dockerfile and the
// configuration they carry agree with each other and with package config.
// See docs/deployment.md.
package deploy
