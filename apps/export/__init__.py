"""What a trained model is exported as: meshes (`mesh.py`: marching cubes / TSDF, colours,
clean-up, writers; `mesh_metrics.py`: Chamfer, F-score), videos (`video.py`) and 3DGS splat files
(`splats.py`)."""
