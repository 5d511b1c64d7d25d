"""Click point lists and place mode (mrml/markups.py) on a real MRML scene: the helpers that arm and
disarm point placing drive the scene's interaction node."""

from __future__ import annotations

from InteractiveAdaptLib import mrml


def test_place_mode_helpers_drive_the_interaction_node(mri_scene):
    positive, negative = mrml.create_click_nodes(mri_scene.scene)
    assert mrml.placing_node(mri_scene.scene) is None
    mrml.start_placing(mri_scene.scene, negative, persistent=True)
    assert mrml.placing_node(mri_scene.scene) is negative
    interaction = mri_scene.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    assert interaction.GetPlaceModePersistence() == 1
    mrml.stop_placing(mri_scene.scene)
    assert mrml.placing_node(mri_scene.scene) is None
