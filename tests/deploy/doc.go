// Package deploy checks the deployment files under deploy/ against the code
// they run, without a Docker engine or a cluster: deploy/compose.yaml through
// the compose-spec loader, deploy/k8s through kustomize and the Kubernetes
// API types, deploy/ecs through the AWS SDK's request types, and
// deploy/Dockerfile and deploy/healthcheck directly.
//
// It is its own module so that those libraries stay out of the modules that
// build the services.
package deploy
