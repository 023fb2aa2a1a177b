// The Knative Serving release whose CRDs the manifest tests load into the control plane (Serving, DomainMapping,
// and the networking CRDs such as ClusterDomainClaim), as envtest users load CRDs from a module: nothing is copied
// into the repository. knative.dev/serving v0.42.2 is Knative Serving 1.15.2, the oldest release docs/knative.md
// supports; knative.dev/networking is the version that release requires.
module github.com/irsa-webhook/irsa-webhook/test/cluster/knative

go 1.26.0

require (
	knative.dev/networking v0.0.0-20240716111826-bab7f2a3e556
	knative.dev/serving v0.42.2
)
