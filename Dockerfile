# bonefem image: Debian 13 with DOLFINx 0.9, PETSc, Open MPI, gmsh and PyVista.
# The same install script and package list as ./bonefem's runtime
# (fem/runtime/install-debian.sh reads fem/runtime/debian-packages.txt).
FROM debian:trixie-slim

COPY fem/runtime/debian-packages.txt fem/runtime/install-debian.sh /opt/bonefem/fem/runtime/
RUN sh /opt/bonefem/fem/runtime/install-debian.sh

COPY . /opt/bonefem
RUN sh /opt/bonefem/fem/runtime/install-debian.sh --register /opt/bonefem

# Open MPI as root in a container without a network.
ENV OMPI_ALLOW_RUN_AS_ROOT=1 \
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    OMPI_MCA_btl=self,sm \
    OMPI_MCA_rmaps_base_oversubscribe=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /work
ENTRYPOINT ["bonefem"]
CMD ["--help"]
