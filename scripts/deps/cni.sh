# CNIRunner: the reference CNI plugins (bridge, host-local, portmap… in /usr/lib/cni)
# that CNIRunnerTests run for real inside test-made network namespaces; iproute2 (ip, tc)
# and util-linux (nsenter) used by NamespaceNetwork; iptables for portmap/firewall;
# busybox-static for ping/nc between the test namespaces.
APT_PACKAGES+=(containernetworking-plugins iproute2 util-linux iptables busybox-static)
