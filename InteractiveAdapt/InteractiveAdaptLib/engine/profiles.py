"""The session's door to a learning profile's weights and versions: load, list, describe, roll back,
restart from the shipped model, export, save. Mixed into InteractiveSession (engine/session.py), whose
network, adapter, store and counts it uses.

Every door to a profile goes through profile_name(): a segment may be called anything ("Tumor #1",
"Hippocampus (L)"), and saving, listing, rolling back and restarting must all reach the same folder.
"""

from __future__ import annotations

from pathlib import Path

from InteractiveAdaptLib.errors import CaseStateError
from InteractiveAdaptLib.model.base_model import load_weights_into
from InteractiveAdaptLib.store.names import profile_name
from InteractiveAdaptLib.store.profile_store import ProfileStore, VersionInfo


class SessionProfiles:
    """Profiles and versions of an InteractiveSession (a mixin: the session holds the state)."""

    @staticmethod
    def profile_name(name: str) -> str:
        """The learning profile a structure name maps to: its side dropped, made a safe name.

        'Hippocampus (L)' -> 'Hippocampus', 'Tumor #1' -> 'Tumor 1'.
        """
        return profile_name(name)

    def _profile_store(self, profile: str) -> ProfileStore | None:
        if self.store is None:
            return None
        return self.store.profile(self.site, profile_name(profile), self.user)

    def use_profile(self, profile: str) -> None:
        """Load the weights of the learning profile of a structure name (a new one starts from the base).

        Args:
            profile: a structure or segment name; it maps to a profile with `profile_name`.

        Raises:
            IncompatibleBaseModelError: the profile's current version (or the one it falls back to past
                damaged files) was learned from another base model.
            WeightsError: the saved weights do not fit this network, or (a profile that starts from the
                base) the shipped weight file is missing, damaged or made for another network.
            SiteStoreError: another program holds the profile's lock past the timeout, or the
                session's site or user name is invalid.
        """
        profile = profile_name(profile)
        if profile == self.profile:
            return
        # Learning that no version holds (no store, or autosave off) is kept in memory across switches.
        unsaved = self.store is None or not self.config.autosave
        if self.profile is not None and unsaved:
            counts = (self.version, self.cases_learned, self.clicks_learned)
            self._memory_profiles[self.profile] = (self.adapter.snapshot(), counts)
        self.adapter.reset_optimizer()
        self.version, self.cases_learned, self.clicks_learned = None, 0, 0
        loaded = None
        if self.store is not None and not (unsaved and profile in self._memory_profiles):
            loaded = self._profile_store(profile).load(self.base.sha256)
        if loaded is not None:
            load_weights_into(self.network, loaded.model_state, f"site '{self.site}' profile '{profile}'")
            if loaded.optimizer_state is not None:
                self.adapter.load_optimizer_state(loaded.optimizer_state)
            self.version = loaded.info.version
            self.cases_learned, self.clicks_learned = loaded.info.cases_learned, loaded.info.clicks_learned
        elif profile in self._memory_profiles:
            snapshot, (self.version, self.cases_learned, self.clicks_learned) = self._memory_profiles[profile]
            self.adapter.restore(snapshot)
        else:
            load_weights_into(self.network, self.base.fresh_state(), "the base model")
        self.network.eval()
        self.profile = profile

    def _reload_profile(self, profile: str) -> None:
        """Load the profile's weights again if it is the one in use (after its current version changed)."""
        profile = profile_name(profile)
        if self.profile == profile:
            self.profile = None
            self.use_profile(profile)

    def restart_profile_from_base(self, profile: str) -> None:
        """After the user agreed: a profile adapted from an older base model starts again from the
        shipped one (its old versions stay listed and exportable).

        Args:
            profile: a structure or segment name (mapped with `profile_name`).

        Raises:
            WeightsError: the shipped weight file is missing, damaged or made for another network.
            SiteStoreError: another program holds the profile's lock past the timeout, or the
                session's site or user name is invalid.
        """
        profile = profile_name(profile)
        if self.store is not None:
            self._profile_store(profile).restart_from_base(self.base.sha256)
        self._memory_profiles.pop(profile, None)
        if self.profile == profile:
            self.profile = None
        self.use_profile(profile)

    def saved_versions(self, profile: str) -> list[VersionInfo]:
        """The saved versions of a profile that this base model can use, newest first.

        Args:
            profile: a structure or segment name (mapped with `profile_name`).

        Returns:
            Undamaged versions learned from the installed base model; empty without a store.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout, or the
                session's site or user name is invalid.
        """
        store = self._profile_store(profile)
        if store is None:
            return []
        return store.compatible_versions(self.base.sha256)[::-1]

    def version_choices(self, profile: str) -> list[tuple[str, int]]:
        """The entries of a version list: saved versions newest first, then the base model.

        Returns:
            (label, version) pairs; the last is ("Shipped base model", 0).

        Raises:
            SiteStoreError: as `saved_versions`.
        """
        choices = [
            (f"Version {i.version} ({i.created[:10]}, {_count(i.cases_learned, 'case')})", i.version)
            for i in self.saved_versions(profile)
        ]
        return choices + [("Shipped base model", 0)]

    def provenance(self, profile: str) -> str:
        """One line for the clinician on where the weights of a profile come from.

        Returns:
            The profile's current version, its site, what it learned and when it was saved; or that the
            shipped base model is in use.

        Raises:
            SiteStoreError: another program holds the profile's lock past the timeout, or the
                session's site or user name is invalid.
        """
        model = self.base.card.get("name") or self.base.directory.name
        store = self._profile_store(profile)
        info = store.current() if store is not None else None
        if info is None:
            return f"Shipped base model '{model}', not adapted to site '{self.site}' yet."
        saved = info.created[:16].replace("T", " ")
        return (
            f"Version {info.version} of site '{self.site}', profile '{store.profile}': learned from "
            f"{_count(info.cases_learned, 'case')} and {_count(info.clicks_learned, 'click')}, saved {saved} UTC "
            f"(adapted from '{model}')."
        )

    def rollback(self, profile: str, version: int) -> None:
        """Make `version` (0 = the shipped base model) the one in use for a profile, and load it now.

        Args:
            profile: a structure or segment name (mapped with `profile_name`).
            version: a version listed by `saved_versions`, or 0.

        Raises:
            CaseStateError: a case is open (finish or reset it first), or there is no site store.
            SiteStoreError: no such version, the version is damaged, another program holds the profile's
                lock past the timeout, or the session's site or user name is invalid.
            IncompatibleBaseModelError: the profile is the one in use and `version` was learned from
                another base model (the version is made current all the same).
            WeightsError: the profile is the one in use and its weights do not fit this network, or
                (version 0) the shipped weight file is missing, damaged or made for another network.
        """
        if self.case_open:
            raise CaseStateError("Finish or reset the case before changing the model version.")
        store = self._profile_store(profile)
        if store is None:
            raise CaseStateError("This session keeps no site versions, so there is nothing to roll back.")
        store.rollback(version)
        self._memory_profiles.pop(profile_name(profile), None)  # the chosen version replaces unsaved learning
        self._reload_profile(profile)

    def export_site(self, archive: str | Path) -> Path:
        """Write every profile and version of this session's site into one .zip or .tar.gz.

        Returns:
            The archive's path.

        Raises:
            CaseStateError: there is no site store.
            SiteStoreError: the site has nothing saved yet or its name is invalid, the file name ends in
                none of .zip, .tar.gz and .tgz, the file cannot be written, or another program holds a
                profile's lock past the timeout (the site is unchanged).
        """
        if self.store is None:
            raise CaseStateError("This session keeps no site versions, so there is nothing to export.")
        return self.store.export_site(self.site, archive)

    def _save(self) -> int | None:
        profile_store = self._profile_store(self.profile)
        if profile_store is None:
            return None
        info = profile_store.save(
            {k: v.detach().cpu() for k, v in self.network.state_dict().items()},
            self.adapter.optimizer.state_dict(),
            base_sha256=self.base.sha256,
            cases_learned=self.cases_learned,
            clicks_learned=self.clicks_learned,
            parent=self.version or 0,  # what these weights learned from: another writer may have saved since
        )
        self.version = info.version
        self.save_warning = info.concurrent_warning  # another writer saved meanwhile: both kept, say so
        return info.version


def _count(n: int, noun: str) -> str:
    """'1 case', '2 cases'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
