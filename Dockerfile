# bonefem image: Debian 13 with DOLFINx 0.9, PETSc, Open MPI, gmsh and PyVista.
# The same install script and package list as ./bonefem's runtime
# (fem/runtime/install-debian.sh reads fem/runtime/debian-packages.txt).
# Build: `docker build -t bonefem .`, or fem/runtime/image.sh build where no registry
# can be reached (docs/docker.md).
FROM debian:trixie-slim

# Packages first (a layer that changes only with the list); the layer keeps no apt
# lists or downloaded .deb files.
COPY fem/runtime/debian-packages.txt fem/runtime/install-debian.sh /opt/bonefem/fem/runtime/
RUN sh /opt/bonefem/fem/runtime/install-debian.sh \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log

# The code (.dockerignore keeps results, caches and git history out) and the `bonefem`
# command; --register also empties the apt lists again and writes a .pth file into
# Debian's /usr/local/lib/python3.X/dist-packages; PYTHONPATH (below) says the same, as
# in ./bonefem.
COPY . /opt/bonefem
RUN sh /opt/bonefem/fem/runtime/install-debian.sh --register /opt/bonefem \
    && rm -rf /var/log/apt /var/log/dpkg.log

# Open MPI as root in a container without a network (the settings ./bonefem uses);
# no bytecode written into mounted folders; `import fem` from /opt/bonefem.
ENV OMPI_ALLOW_RUN_AS_ROOT=1 \
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    OMPI_MCA_btl=self,sm \
    OMPI_MCA_rmaps_base_oversubscribe=1 \
    OMPI_MCA_hwloc_base_binding_policy=none \
    PRTE_MCA_rmaps_default_mapping_policy=:oversubscribe \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/opt/bonefem

WORKDIR /work
ENTRYPOINT ["bonefem"]
CMD ["--help"]
